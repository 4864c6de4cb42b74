//! Several `guildhall` processes on one PostgreSQL database: sessions are shared, 1,000 jobs are
//! each run exactly once by two workers, and a worker killed mid-job leaves its job to be taken
//! again when the lease runs out.
//!
//! These tests need PostgreSQL: run them with `scripts/test` (or set GUILDHALL_TEST_POSTGRES).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use guildhall_db::jobs::{JobState, NewJob};
use guildhall_db::{testing, Db};

const BIN: &str = env!("CARGO_BIN_EXE_guildhall");
/// A fixed secret key for the test processes (so that none writes a key file).
const KEY: &str = "5c1d1f0e9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5";
/// Upper bound for waiting on a process or a condition (never reached when things work).
const PATIENCE: Duration = Duration::from_secs(120);

/// A child process that is killed when dropped; its standard output is read line by line.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let dir = std::env::temp_dir();
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(&dir)
            .env("GUILDHALL_SECRET_KEY", KEY)
            .env_remove("GUILDHALL_CONFIG")
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start guildhall");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines: rx }
    }

    /// Waits for a line of output starting with `prefix`; returns the rest of it.
    fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                Err(e) => panic!(
                    "no line starting with {prefix:?} from guildhall ({e}); status: {:?}",
                    self.child.try_wait()
                ),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_to_end(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(std::env::temp_dir())
        .env("GUILDHALL_SECRET_KEY", KEY)
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
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "guildhall {args:?} failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// One HTTP/1.1 request; returns (status, headers, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_through_one_replica_is_valid_on_another() {
    let url = testing::fresh_postgres_url().await;
    run_to_end(
        &[
            "admin",
            "create-owner",
            "--email",
            "owner@example.org",
            "--database-url",
            &url,
        ],
        "correct horse battery\n",
    );
    let common = [
        "serve",
        "--no-worker",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &url,
    ];
    let mut a = Proc::start(&common, &[]);
    let mut b = Proc::start(&common, &[]);
    let addr_a = a.wait_for("listening on http://");
    let addr_b = b.wait_for("listening on http://");
    assert_ne!(addr_a, addr_b);

    // Sign in through A (the anonymous CSRF token is a double-submit cookie).
    let csrf = "testcsrftoken0123456789";
    let body =
        format!("email=owner%40example.org&password=correct+horse+battery&csrf_token={csrf}");
    let (status, headers, _) = http(
        &addr_a,
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &format!("gh_csrf={csrf}")),
        ],
        &body,
    );
    assert!((200..400).contains(&status), "login through A: {status}");
    let session = headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find_map(|(_, v)| {
            v.strip_prefix("gh_session=")
                .map(|r| r.split(';').next().unwrap().to_owned())
        })
        .expect("a session cookie from A");
    assert!(!session.is_empty());

    // B knows the session; without it, B does not let us in.
    let cookie = format!("gh_session={session}");
    let (status, _, body) = http(&addr_b, "GET", "/orgs", &[("Cookie", &cookie)], "");
    assert_eq!(status, 200, "signed-in page on B: {body}");
    let (status, _, _) = http(&addr_b, "GET", "/orgs", &[], "");
    assert_ne!(status, 200, "B must not serve the page without a session");

    let db = Db::connect(&url).await.unwrap();
    testing::dispose(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_run_each_of_1000_jobs_exactly_once() {
    let url = testing::fresh_postgres_url().await;
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    testing::create_test_job_runs(&db).await.unwrap();
    let env = [
        ("GUILDHALL_TEST_JOBS", "1"),
        ("GUILDHALL_WORKER_POLL_INTERVAL_MS", "50"),
        ("GUILDHALL_WORKER_CONCURRENCY", "4"),
        ("GUILDHALL_DATABASE_URL", url.as_str()),
    ];
    let mut w1 = Proc::start(&["worker"], &env);
    let mut w2 = Proc::start(&["worker"], &env);
    let name1 = w1.wait_for("worker ").split(' ').next().unwrap().to_owned();
    let name2 = w2.wait_for("worker ").split(' ').next().unwrap().to_owned();
    assert_ne!(name1, name2);

    let mut tx = db.begin().await.unwrap();
    let mut ids = Vec::new();
    for n in 0..1000 {
        let id = Db::enqueue_in(
            &mut tx,
            &NewJob::new(testing::TEST_JOB_KIND, serde_json::json!({ "n": n })),
        )
        .await
        .unwrap()
        .unwrap();
        ids.push(id.0);
    }
    tx.commit().await.unwrap();

    wait_until("all 1000 jobs to be done", || {
        let db = db.clone();
        async move {
            let counts = db.job_counts().await.unwrap();
            counts.contains(&(JobState::Done, 1000))
        }
    })
    .await;
    let runs = testing::test_job_runs(&db).await.unwrap();
    let mut ran: Vec<i64> = runs.iter().map(|r| r.0).collect();
    ran.sort();
    assert_eq!(ran, ids, "every job exactly once");
    assert!(
        runs.iter().all(|r| r.2 == 1),
        "no job needed a second attempt"
    );
    let by1 = runs.iter().filter(|r| r.1 == name1).count();
    let by2 = runs.iter().filter(|r| r.1 == name2).count();
    assert_eq!(by1 + by2, 1000);
    assert!(by1 > 0 && by2 > 0, "both workers took part ({by1} / {by2})");
    drop(w1);
    drop(w2);
    testing::dispose(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_killed_worker_is_run_again_after_its_lease() {
    let url = testing::fresh_postgres_url().await;
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    testing::create_test_job_runs(&db).await.unwrap();
    let env = [
        ("GUILDHALL_TEST_JOBS", "1"),
        ("GUILDHALL_WORKER_POLL_INTERVAL_MS", "50"),
        ("GUILDHALL_JOB_LEASE_MS", "1000"),
        ("GUILDHALL_DATABASE_URL", url.as_str()),
    ];
    let mut first = Proc::start(&["worker"], &env);
    let first_name = first
        .wait_for("worker ")
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    // The first attempt sleeps far longer than the test waits: it only ends by the kill.
    let id = db
        .enqueue(&NewJob::new(
            testing::TEST_JOB_KIND,
            serde_json::json!({ "sleep_ms": 600_000 }),
        ))
        .await
        .unwrap()
        .unwrap();
    wait_until("the first worker to claim the job", || {
        let db = db.clone();
        let name = first_name.clone();
        async move {
            let j = db.job(id).await.unwrap().unwrap();
            j.state == JobState::Running && j.locked_by.as_deref() == Some(name.as_str())
        }
    })
    .await;
    // SIGKILL: no chance to release anything.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert_eq!(db.job(id).await.unwrap().unwrap().state, JobState::Running);

    let mut second = Proc::start(&["worker"], &env);
    let second_name = second
        .wait_for("worker ")
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    wait_until("the job to be done by the second worker", || {
        let db = db.clone();
        async move { db.job(id).await.unwrap().unwrap().state == JobState::Done }
    })
    .await;
    let job = db.job(id).await.unwrap().unwrap();
    assert_eq!(job.attempts, 2);
    let runs = testing::test_job_runs(&db).await.unwrap();
    assert_eq!(runs, vec![(id.0, second_name, 2)]);
    drop(second);
    testing::dispose(db).await;
}
