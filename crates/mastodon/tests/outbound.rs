#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The outbound guard: a `PublicOnly` client refuses loopback targets (IP literals, names that
//! resolve there, redirects there) with a clear, non-retried error; `Any` reaches them.

use std::time::Duration;

use guildhall_fake_mastodon::FakeMastodon;
use guildhall_mastodon::{Client, ClientConfig, Error, Outbound};

fn config(outbound: Outbound) -> ClientConfig {
    ClientConfig {
        max_retries: 3,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        outbound,
        ..ClientConfig::default()
    }
}

fn port_of(url: &str) -> u16 {
    url::Url::parse(url).unwrap().port().unwrap()
}

#[tokio::test]
async fn public_only_refuses_loopback_and_any_reaches_it() {
    let fake = FakeMastodon::builder().start().await.unwrap();
    let port = port_of(fake.url());
    let literal = format!("http://127.0.0.1:{port}");
    let name = format!("http://localhost:{port}");

    // Any: the fake answers, by IP literal and by name.
    for base in [&literal, &name] {
        let c = Client::new(base, None, config(Outbound::Any)).unwrap();
        c.instance().await.unwrap();
    }

    // PublicOnly: an IP-literal base is refused when the client is made.
    let err = Client::new(&literal, None, config(Outbound::PublicOnly)).unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("127.0.0.1 is not a public address (loopback)"),
        "{err}"
    );

    // A name resolving only to loopback: refused at connect time, naming the host, not
    // retried (InvalidUrl is not transient).
    let c = Client::new(&name, None, config(Outbound::PublicOnly)).unwrap();
    let err = c.instance().await.unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert!(
        err.to_string()
            .contains("localhost resolves only to non-public addresses"),
        "{err}"
    );
}
