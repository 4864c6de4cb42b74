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

/// Redirects: a name pinned to the local server (standing in for a public host) redirects to
/// an IP literal and to a name on loopback; `PublicOnly` follows neither, `Any` follows.
#[tokio::test]
async fn public_only_does_not_follow_redirects_to_private_addresses() {
    use axum::response::Redirect;
    use axum::routing::get;
    use guildhall_mastodon::net;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let port = addr.port();
    let to_literal = format!("http://127.0.0.1:{port}/target");
    let to_name = format!("http://localhost:{port}/target");
    let app = axum::Router::new()
        .route(
            "/literal",
            get(move || async move { Redirect::temporary(&to_literal) }),
        )
        .route(
            "/name",
            get(move || async move { Redirect::temporary(&to_name) }),
        )
        .route("/target", get(|| async { "reached" }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let client = |outbound| {
        net::apply(reqwest::Client::builder(), outbound)
            .resolve("public.test", addr)
            .build()
            .unwrap()
    };
    let guarded = client(Outbound::PublicOnly);
    for (path, expected) in [
        ("literal", "127.0.0.1 is not a public address (loopback)"),
        ("name", "localhost resolves only to non-public addresses"),
    ] {
        let err = guarded
            .get(format!("http://public.test:{port}/{path}"))
            .send()
            .await
            .unwrap_err();
        let text = net::describe(&err);
        assert!(text.contains(expected), "{path}: {text}");
    }
    let open = client(Outbound::Any);
    for path in ["literal", "name"] {
        let body = open
            .get(format!("http://public.test:{port}/{path}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "reached");
    }
}

/// A proxy would fetch any target itself, out of the guard's reach: `PublicOnly` sends nothing
/// through one (this one stands in for `HTTPS_PROXY` in the environment), `Any` does.
#[tokio::test]
async fn public_only_sends_nothing_through_a_proxy() {
    use guildhall_mastodon::net;

    async fn serve(body: &'static str) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(move || async move { body });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }
    // The target, pinned as a name (standing in for a public host), and the proxy.
    let target = serve("direct").await;
    let proxy = serve("through the proxy").await;
    let fetch = |outbound| async move {
        let proxy = reqwest::Proxy::all(format!("http://{proxy}")).unwrap();
        net::apply(reqwest::Client::builder().proxy(proxy), outbound)
            .resolve("public.test", target)
            .build()
            .unwrap()
            .get(format!("http://public.test:{}/x", target.port()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(fetch(Outbound::PublicOnly).await, "direct");
    assert_eq!(fetch(Outbound::Any).await, "through the proxy");
}
