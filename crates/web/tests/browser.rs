//! The browser test: headless Chromium, driven through chromedriver (started here on a free
//! port), against the app served in-process on 127.0.0.1, on both backends. It creates the
//! first owner through the setup page, signs in, creates an instance organisation, invites a
//! moderator who accepts in a second browser session and signs in, and both sign out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::browser::*;

use fantoccini::{Client, Locator};
use guildhall_core::Role;
use guildhall_db::db_test;
use guildhall_web::{AppState, WebConfig};

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
