//! The browser test: headless Chromium, driven through chromedriver (started here on a free
//! port), against the app served in-process on 127.0.0.1, on both backends. It creates the
//! first owner through the setup page, signs in, creates an instance organisation, invites a
//! moderator who accepts in a second browser session and signs in, and both sign out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use guildhall_core::Role;
use guildhall_db::db_test;
use guildhall_web::{AppState, WebConfig};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// One browser test at a time (two Chromiums per test on a small machine is enough).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver on a free port and waits until it answers.
async fn chromedriver() -> (tokio::process::Child, String) {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists(),
        "{CHROMEDRIVER} is missing: install Debian's chromium and chromium-driver"
    );
    let port = free_port();
    let child = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, format!("http://127.0.0.1:{port}"))
}

/// A new headless browser session with its own fresh profile.
async fn browser(driver: &str, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("start a browser session")
}

async fn wait_for_path(c: &Client, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = c.current_url().await.unwrap();
        let path_q = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        if path_q.starts_with(want) {
            return path_q;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {want}, still at {path_q}: {}",
            c.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(c: &Client, css: &str, text: &str) {
    let el = c.find(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Signs in with the keyboard only: typing, then Enter in the password field.
async fn login(c: &Client, base: &str, email: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    fill(c, "#email", email).await;
    fill(c, "#password", &format!("{password}\u{E007}")).await;
    wait_for_path(c, "/orgs").await;
}

async fn logout(c: &Client, base: &str) {
    c.goto(&format!("{base}/orgs")).await.unwrap();
    click(c, "#logout").await;
    wait_for_path(c, "/login?done=logout").await;
    let notice = c
        .find(Locator::Css("p.notice"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(notice.contains("signed out"), "{notice}");
}

db_test!(
    browser_first_owner_org_invitation_and_logout,
    |db| async move {
        let _one = ONE_AT_A_TIME.lock().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let st = AppState::new(
            db.clone(),
            WebConfig {
                base_url: base.clone(),
                ..WebConfig::default()
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(guildhall_web::serve(listener, st, async {
            let _ = stopped.await;
        }));
        let (mut driver, driver_url) = chromedriver().await;
        let profiles = std::env::temp_dir().join(format!(
            "guildhall-browser-{}-{}",
            std::process::id(),
            free_port()
        ));
        let owner = browser(&driver_url, &profiles.join("owner")).await;
        let moderator = browser(&driver_url, &profiles.join("moderator")).await;
        // The steps run in a task, so that the browsers are closed even when a step fails.
        let outcome = tokio::spawn(flow(
            db.clone(),
            base.clone(),
            owner.clone(),
            moderator.clone(),
        ))
        .await;
        let _ = moderator.close().await;
        let _ = owner.close().await;
        let _ = driver.kill().await;
        let _ = stop.send(());
        let _ = server.await;
        let _ = std::fs::remove_dir_all(&profiles);
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
);

/// The steps of the browser test.
async fn flow(db: guildhall_db::Db, base: String, owner: Client, moderator: Client) {
    // The first owner, through the one-time setup page.
    owner.goto(&format!("{base}/setup")).await.unwrap();
    fill(&owner, "#email", "ada@hall.example").await;
    fill(&owner, "#display_name", "Ada Owner").await;
    fill(&owner, "#password", "correct horse battery").await;
    click(&owner, "form[action='/setup'] button[type=submit]").await;
    wait_for_path(&owner, "/login?done=setup").await;

    // Sign in; create an instance organisation with its domain.
    login(&owner, &base, "ada@hall.example", "correct horse battery").await;
    fill(&owner, "#org-name", "Social Example").await;
    click(&owner, "#kind-instance").await;
    fill(&owner, "#org-domain", "social.example").await;
    click(&owner, "#create-org").await;
    let org_path = wait_for_path(&owner, "/orgs/").await;
    let heading = owner
        .find(Locator::Css("main h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(heading, "Social Example");
    let src = owner.source().await.unwrap();
    assert!(src.contains("social.example"));

    // Invite a moderator.
    owner
        .goto(&format!("{base}{org_path}/invitations"))
        .await
        .unwrap();
    owner
        .find(Locator::Css("#inv-role"))
        .await
        .unwrap()
        .select_by_value("moderator")
        .await
        .unwrap();
    click(&owner, "#create-invitation").await;
    let link_el = owner
        .wait()
        .for_element(Locator::Css("#invite-link"))
        .await
        .unwrap();
    let link = link_el
        .prop("value")
        .await
        .unwrap()
        .expect("the link is shown");
    assert!(link.starts_with(&format!("{base}/invite/inv_")), "{link}");

    // The moderator accepts in a second browser session, then signs in.
    moderator.goto(&link).await.unwrap();
    let text = moderator
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("Social Example") && text.contains("moderator"),
        "{text}"
    );
    fill(&moderator, "#email", "mo@hall.example").await;
    fill(&moderator, "#display_name", "Mo Moderator").await;
    fill(&moderator, "#password", "another good password").await;
    click(&moderator, "#accept").await;
    wait_for_path(&moderator, "/login?done=joined").await;
    login(
        &moderator,
        &base,
        "mo@hall.example",
        "another good password",
    )
    .await;
    let table = moderator
        .find(Locator::Css("main table"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        table.contains("Social Example") && table.contains("moderator"),
        "{table}"
    );
    // The moderator may not manage invitations: the page says so.
    moderator
        .goto(&format!("{base}{org_path}/invitations"))
        .await
        .unwrap();
    let h1 = moderator
        .find(Locator::Css("main h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(h1, "Not allowed");

    // The owner sees the new member.
    owner.goto(&format!("{base}{org_path}")).await.unwrap();
    let members = owner
        .find(Locator::Css("#members"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        members.contains("Mo Moderator") && members.contains("moderator"),
        "{members}"
    );

    logout(&moderator, &base).await;
    logout(&owner, &base).await;
    // Signed out: the organisation page sends the browser to the login page.
    owner.goto(&format!("{base}{org_path}")).await.unwrap();
    wait_for_path(&owner, "/login?next=").await;

    let mo = db
        .account_by_email(&"mo@hall.example".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let orgs = db.organisations_of(mo.id).await.unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0].1, Role::Moderator);
    assert_eq!(
        orgs[0].0.domain.as_ref().unwrap().as_str(),
        "social.example"
    );
}
