//! The server commands as a person runs them: first run with no configuration, `admin
//! create-owner`, `admin verify-audit`, `admin rotate-key` (each on both database backends).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use guildhall_db::audit::NewAuditEntry;
use guildhall_db::secrets::{Keyring, SecretValue};
use guildhall_db::{db_test, testing, Db};

const BIN: &str = env!("CARGO_BIN_EXE_guildhall");

/// A new empty directory under the temporary directory.
fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "guildhall-cli-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `guildhall` command with a clean environment (no GUILDHALL_* or DATABASE_URL from the
/// test runner), run in `dir`.
fn guildhall(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("GUILDHALL_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs to the end with `stdin`; returns (success, stdout, stderr).
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> (bool, String, String) {
    let mut child = guildhall(dir, args, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn db_url(db: &Db) -> String {
    testing::url_of(db)
}

#[test]
fn serve_with_no_configuration_creates_the_database_and_serves_the_login_page() {
    let dir = temp_dir("first-run");
    let mut child = guildhall(&dir, &["serve", "--listen", "127.0.0.1:0"], &[])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("serve prints its URL");
        lines.push(line.clone());
        if let Some(a) = line.strip_prefix("listening on http://") {
            break a.trim().to_owned();
        }
    };
    // The account hint comes after the URL.
    lines.push(rx.recv_timeout(Duration::from_secs(60)).unwrap());
    lines.push(rx.recv_timeout(Duration::from_secs(60)).unwrap());
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("<form") && page.contains("password"),
        "{page}"
    );
    assert!(
        lines.iter().any(|l| l.contains("sqlite://guildhall.db")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("create-owner")),
        "{lines:?}"
    );
    assert!(dir.join("guildhall.db").exists());
    let key = dir.join("guildhall.key");
    assert!(key.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

db_test!(
    create_owner_reads_the_password_from_stdin,
    |db| async move {
        let dir = temp_dir("owner");
        let url = db_url(&db);
        let args = [
            "admin",
            "create-owner",
            "--email",
            "Owner@Example.org",
            "--database-url",
            &url,
        ];
        let (ok, _, err) = run(&dir, &args, &[], "short\n");
        assert!(!ok && err.contains("password"), "{err}");
        assert!(!db.any_account_exists().await.unwrap());
        let (ok, out, err) = run(&dir, &args, &[], "correct horse battery\n");
        assert!(ok, "{out} {err}");
        let email = "owner@example.org".parse().unwrap();
        let owner = db
            .check_login(&email, "correct horse battery")
            .await
            .unwrap()
            .unwrap();
        assert!(owner.site_admin);
        // Recorded in the audit log; a second owner with the same address is refused.
        assert_eq!(
            db.audit_entries(None, None, 10).await.unwrap()[0].action,
            "account.create_owner"
        );
        let (ok, _, err) = run(&dir, &args, &[], "correct horse battery\n");
        assert!(!ok && err.contains("already exists"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
);

db_test!(verify_audit_names_the_first_broken_entry, |db| async move {
    let dir = temp_dir("audit");
    let url = db_url(&db);
    for i in 0..4 {
        db.append_audit(&NewAuditEntry {
            actor: "test".into(),
            action: format!("test.{i}"),
            ..NewAuditEntry::default()
        })
        .await
        .unwrap();
    }
    let args = ["admin", "verify-audit", "--database-url", &url];
    let (ok, out, _) = run(&dir, &args, &[], "");
    assert!(ok && out.contains("intact: 4 entries"), "{out}");
    testing::tamper_audit_entry(&db, 2, "{\"forged\":true}")
        .await
        .unwrap();
    let (ok, out, _) = run(&dir, &args, &[], "");
    assert!(!ok, "a broken chain must fail");
    assert!(out.contains("BROKEN at entry 2"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
});

db_test!(rotate_key_re_encrypts_every_secret, |db| async move {
    let dir = temp_dir("rotate");
    let url = db_url(&db);
    let key_file = dir.join("secret.key");
    let kf = key_file.display().to_string();
    let env = [("GUILDHALL_SECRET_KEY_FILE", kf.as_str())];
    let old = Keyring::load_or_create_file(&key_file).unwrap();
    db.put_secret(&old, "instance:1:token", &SecretValue::new("tok-1"))
        .await
        .unwrap();
    db.put_secret(&old, "instance:2:token", &SecretValue::new("tok-2"))
        .await
        .unwrap();
    // The old key alone (`old` itself follows the key file, as a running server's does).
    let old_only = Keyring::new(old.current(), vec![]);

    let (ok, out, err) = run(
        &dir,
        &["admin", "rotate-key", "--database-url", &url],
        &env,
        "",
    );
    assert!(ok, "{out} {err}");
    assert!(out.contains("2 secrets re-encrypted"), "{out}");
    assert!(
        !out.contains(&old_only.current().to_hex()),
        "keys are not printed"
    );
    let ring = Keyring::load_or_create_file(&key_file).unwrap();
    assert_eq!(ring.keys().len(), 2);
    assert_ne!(ring.current().id(), old_only.current().id());
    assert_eq!(old.current().id(), ring.current().id(), "followed the file");
    let new_only = Keyring::new(ring.current(), vec![]);
    for (name, value) in [("instance:1:token", "tok-1"), ("instance:2:token", "tok-2")] {
        assert_eq!(
            db.get_secret(&new_only, name)
                .await
                .unwrap()
                .unwrap()
                .expose_str(),
            Some(value)
        );
        assert!(
            db.get_secret(&old_only, name).await.is_err(),
            "the old key alone no longer opens it"
        );
        assert!(db.get_secret(&old, name).await.is_ok(), "followed the file");
    }
    let (ok, out, _) = run(
        &dir,
        &["admin", "rotate-key", "--drop-old", "--database-url", &url],
        &env,
        "",
    );
    assert!(ok && out.contains("older keys dropped"), "{out}");
    let ring2 = Keyring::load_or_create_file(&key_file).unwrap();
    assert_eq!(ring2.keys().len(), 1);
    assert_eq!(
        db.get_secret(&ring2, "instance:1:token")
            .await
            .unwrap()
            .unwrap()
            .expose(),
        b"tok-1"
    );
    std::fs::remove_dir_all(&dir).unwrap();
});

db_test!(
    worker_finishes_its_job_and_exits_on_sigterm,
    |db| async move {
        use guildhall_db::jobs::{JobState, NewJob};
        let dir = temp_dir("sigterm");
        let url = db_url(&db);
        testing::create_test_job_runs(&db).await.unwrap();
        let id = db
            .enqueue(&NewJob::new(
                testing::TEST_JOB_KIND,
                serde_json::json!({ "sleep_ms": 1500 }),
            ))
            .await
            .unwrap()
            .unwrap();
        let env = [
            ("GUILDHALL_DATABASE_URL", url.as_str()),
            ("GUILDHALL_TEST_JOBS", "1"),
            ("GUILDHALL_WORKER_POLL_INTERVAL_MS", "50"),
            (
                "GUILDHALL_SECRET_KEY",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            ),
        ];
        let mut child = guildhall(&dir, &["worker"], &env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut claimed = false;
        for _ in 0..2400 {
            if db.job(id).await.unwrap().unwrap().state == JobState::Running {
                claimed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(claimed, "the worker never claimed the job");
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "worker exit status after SIGTERM: {status}"
        );
        // It finished the job it held before exiting.
        let job = db.job(id).await.unwrap().unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Done, 1));
        assert_eq!(testing::test_job_runs(&db).await.unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
);

/// `guildhall serve` gives the web layer its secret key, so an instance admin can store
/// instance secrets: a webhook secret is made and sealed with the key file's key (without the
/// key the API answers 409 "no secret key configured").
#[test]
fn serve_seals_instance_secrets_with_its_key_file() {
    use guildhall_core::{Domain, Email, Name, Password, Scope};
    use guildhall_db::accounts::NewAccount;
    use guildhall_db::instances::{ConnectMethod, NewConnection};
    use guildhall_db::orgs::NewOrganisation;

    let dir = temp_dir("serve-keyring");
    let mut child = guildhall(&dir, &["serve", "--listen", "127.0.0.1:0"], &[])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let addr = lines
        .find_map(|l| {
            l.strip_prefix("listening on http://")
                .map(|a| a.trim().to_owned())
        })
        .expect("serve prints its URL");
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (token, org) = rt.block_on(async {
        let url = format!("sqlite://{}", dir.join("guildhall.db").display());
        let db = Db::connect(&url).await.unwrap();
        let keys = Keyring::load_or_create_file(&dir.join("guildhall.key")).unwrap();
        let account = db
            .create_account(&NewAccount {
                email: "admin@example.org".parse::<Email>().unwrap(),
                display_name: "Admin".parse::<Name>().unwrap(),
                password: "correct horse battery staple".parse::<Password>().unwrap(),
                site_admin: false,
            })
            .await
            .unwrap();
        let org = db
            .create_organisation(
                &NewOrganisation::instance(
                    "Example".parse::<Name>().unwrap(),
                    "social.example".parse::<Domain>().unwrap(),
                ),
                account.id,
            )
            .await
            .unwrap();
        db.save_instance_connection(
            &keys,
            org.id,
            &NewConnection {
                base_url: "https://social.example".to_owned(),
                method: ConnectMethod::Token,
                client: None,
                token: SecretValue::new(b"instance-token".to_vec()),
                scopes: None,
            },
        )
        .await
        .unwrap();
        let (token, _) = db
            .create_api_token(
                account.id,
                &"test".parse::<Name>().unwrap(),
                &[Scope::Read, Scope::Write],
                None,
            )
            .await
            .unwrap();
        db.close().await;
        (token, org.id)
    });

    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /api/v1/orgs/{org}/instance/webhook-secret HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
         Connection: close\r\n\r\n{{}}",
        token.expose()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
    assert!(reply.contains("\"secret\":\""), "{reply}");
    let _ = std::fs::remove_dir_all(&dir);
}
