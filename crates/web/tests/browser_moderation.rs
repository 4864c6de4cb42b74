//! The moderation browser test: headless Chromium against the app served in-process, on both
//! backends, with two fake instances and the job worker run in-process. An instance's admin
//! links the instance to the co-op and adds a note template through the pages; a moderator signs in,
//! opens the queue, opens a case, finds its image blurred and greyscaled until revealed,
//! claims the case, decides citing a rule with a filled note; the worker delivers the action
//! to the fake instance and the case shows it delivered; then the instance's admin signs in
//! and sees the outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod moderation_world;

use std::time::{Duration, Instant};

use common::browser::*;
use common::PASSWORD;
use fantoccini::{Client, Locator};
use guildhall_db::db_test;
use guildhall_web::{AppState, WebConfig};
use moderation_world::*;

db_test!(
    browser_moderator_decides_and_instance_admin_sees_outcome,
    |db| async move {
        let _one = ONE_AT_A_TIME.lock().await;
        let a = fake(&[spam_report(10), rude_report(11)]).await;
        let b = fake(&[spam_report(20)]).await;
        // Instance A is linked by its admin through the page (in `flow`); B by the fixture.
        let w = world_with(&db, "hall", &[&a, &b], false).await;
        let ib = &w.instances[1];
        guildhall_moderation::link_instance(&db, ib.admin, w.coop, ib.id, &settings())
            .await
            .unwrap();
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
            "guildhall-browser-mod-{}-{}",
            std::process::id(),
            free_port()
        ));
        let moderator = browser(&driver_url, &profiles.join("moderator")).await;
        let admin = browser(&driver_url, &profiles.join("admin")).await;
        let outcome =
            tokio::spawn(flow(w, a, base.clone(), moderator.clone(), admin.clone())).await;
        let _ = admin.close().await;
        let _ = moderator.close().await;
        let _ = driver.kill().await;
        let _ = stop.send(());
        let _ = server.await;
        let _ = std::fs::remove_dir_all(&profiles);
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
);

/// The text of the first element matching `css`, retried while the page is being replaced.
async fn text(c: &Client, css: &str) -> String {
    wait_text(c, css, |_| true).await
}

/// Waits until the text of the first element matching `css` satisfies `ok` (pages that
/// redirect to themselves keep the same URL, so the URL cannot tell when the new one is in).
async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.ok(),
            Err(_) => None,
        };
        if let Some(t) = got {
            if ok(&t) {
                return t;
            }
            assert!(Instant::now() < deadline, "{css}: {t}");
        }
        assert!(Instant::now() < deadline, "{css} not found");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn filter_of(c: &Client, css: &str) -> String {
    let v = c
        .execute(
            "return getComputedStyle(document.querySelector(arguments[0])).filter;",
            vec![serde_json::json!(css)],
        )
        .await
        .unwrap();
    v.as_str().unwrap_or_default().to_owned()
}

/// Switches the active organisation with the header's form and waits until the page the form
/// was on has been replaced (the switch may land on the same URL, so the URL cannot tell; an
/// element found before the new page is in would go stale under the test).
async fn switch_to(c: &Client, org: i64) {
    let old = c.find(Locator::Css("html")).await.unwrap();
    let sel = c.find(Locator::Css("#org-switch")).await.unwrap();
    sel.select_by_value(&org.to_string()).await.unwrap();
    click(c, "form.switcher button[type=submit]").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while old.tag_name().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the organisation switch did not load a page"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn flow(
    w: World,
    a: guildhall_fake_mastodon::FakeMastodon,
    base: String,
    m: Client,
    admin: Client,
) {
    // Instance A's admin links the instance to the co-op through the page, then adds the
    // note template the moderator will use.
    let inst = &w.instances[0];
    login(&admin, &base, &inst.admin_email, PASSWORD).await;
    switch_to(&admin, inst.org.0).await;
    let links = format!("/orgs/{}/moderation/links", inst.org.0);
    admin.goto(&format!("{base}{links}")).await.unwrap();
    fill(&admin, "#coop", &w.coop.0.to_string()).await;
    click(&admin, "#link").await;
    wait_for_path(&admin, &links).await;
    wait_text(&admin, "#linked-coop", |t| t.starts_with("Co-op hall")).await;
    fill(&admin, "#template-name-new", "warn").await;
    fill(
        &admin,
        "#template-text-new",
        "Your account broke rule {{rule}} of {{instance}}.",
    )
    .await;
    click(&admin, "#save-settings").await;
    wait_for_path(&admin, &links).await;
    wait_text(&admin, "#template-name-1", |_| true).await;
    // The first sync runs (the link enqueued it).
    drain(&w.services).await;

    // The moderator signs in and opens the queue from the navigation.
    login(&m, &base, &w.m1_email, PASSWORD).await;
    m.goto(&format!("{base}/orgs/{}/moderation", w.coop.0))
        .await
        .unwrap();
    let count = text(&m, "#queue-count").await;
    assert!(count.starts_with("3 of 3 cases match"), "{count}");
    // Filter to one instance: the counts follow.
    let sel = m.find(Locator::Css("#f-instance")).await.unwrap();
    sel.select_by_value(&w.instances[0].id.to_string())
        .await
        .unwrap();
    click(&m, "#apply-filters").await;
    wait_for_path(&m, &format!("/orgs/{}/moderation?", w.coop.0)).await;
    wait_text(&m, "#queue-count", |t| t.starts_with("2 of 3 cases match")).await;

    // Open the spammer's case on the first instance.
    let links = m.find_all(Locator::Css("a.case-link")).await.unwrap();
    let mut opened = false;
    for l in links {
        let row = l.find(Locator::XPath("ancestor::tr")).await.unwrap();
        if row.text().await.unwrap().contains("spammer@bad.example") {
            l.click().await.unwrap();
            opened = true;
            break;
        }
    }
    assert!(opened, "no spammer case in the queue");
    let case_path = wait_for_path(&m, &format!("/orgs/{}/moderation/cases/", w.coop.0)).await;

    // The image is blurred and greyscaled until revealed, one item at a time.
    let img = "figure.mod-media img";
    let f = filter_of(&m, img).await;
    assert!(f.contains("blur") && f.contains("grayscale"), "{f}");
    click(&m, "figure.mod-media button.mod-reveal").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let f = filter_of(&m, img).await;
        if f == "none" {
            break;
        }
        assert!(Instant::now() < deadline, "still filtered: {f}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The image is the copied bytes, served by Guildhall.
    let fetched = m
        .execute_async(
            "var cb = arguments[arguments.length - 1]; \
             fetch(document.querySelector(arguments[0]).src) \
             .then(function (r) { cb(r.status + ' ' + r.headers.get('content-type')); }) \
             .catch(function (e) { cb(String(e)); });",
            vec![serde_json::json!(img)],
        )
        .await
        .unwrap();
    assert_eq!(fetched, serde_json::json!("200 image/png"));

    // Claim, then decide citing rule 1 with the note's placeholders filled.
    click(&m, "#claim").await;
    wait_for_path(&m, &case_path).await;
    wait_text(&m, "#claimed-by", |t| t.starts_with("mod1")).await;
    click(&m, "#action-silence").await;
    click(&m, "#rule-1").await;
    let sel = m.find(Locator::Css("#template")).await.unwrap();
    sel.select_by_value("warn").await.unwrap();
    fill(&m, "#ph-rule", "1 (no spam)").await;
    fill(&m, "#ph-instance", "our instance").await;
    fill(&m, "#private-note", "third time").await;
    click(&m, "#decide").await;
    wait_for_path(&m, &case_path).await;
    wait_text(&m, "#case-state", |t| t.contains("closed")).await;

    // The worker (in-process) delivers the action to the fake instance.
    drain(&w.services).await;
    let acts = a.account_actions();
    assert_eq!(acts.len(), 1, "{acts:?}");
    assert_eq!(acts[0].kind, "silence");
    assert_eq!(acts[0].report_id.as_deref(), Some("10"));
    assert_eq!(
        acts[0].text.as_deref(),
        Some("Your account broke rule 1 (no spam) of our instance.")
    );
    m.refresh().await.unwrap();
    wait_text(&m, ".mod-decision .decision-state", |t| t == "delivered").await;

    // The instance's admin (still signed in) sees the outcome on their instance's page.
    switch_to(&admin, inst.org.0).await;
    admin
        .wait()
        .for_element(Locator::Css("#nav-moderation"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&admin, &format!("/orgs/{}/moderation", inst.org.0)).await;
    click(&admin, "nav.mod-nav a[href$='/moderation/instance']").await;
    wait_for_path(&admin, &format!("/orgs/{}/moderation/instance", inst.org.0)).await;
    let body = text(&admin, "main").await;
    assert!(body.contains("silence citing rule 1"), "{body}");
    let st = text(&admin, ".mod-decision .decision-state").await;
    assert_eq!(st, "delivered");
    assert!(
        body.contains("Your account broke rule 1 (no spam) of our instance."),
        "{body}"
    );
}
