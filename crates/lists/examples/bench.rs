//! Benchmark (not a test): one list refreshed from many URL sources and pushed as diffs to many
//! fake instances. The fakes and the file server run in a separate process (`bench_fakes`), so
//! the CPU time measured here is Guildhall's own; the fakes have no effective rate limit, so no
//! time goes to rate-limit waits.
//!
//! Usage: `bench --data DIR --update DIR2 [--changed 5] [--instances 20] [--pct 50]
//! [--db URL]`. DIR holds the source files (served by `bench_fakes`); after the first round,
//! the first `--changed` files of DIR are replaced by the same-named files of DIR2 and the
//! second round refreshes, rebuilds and pushes the diffs. Prints a Markdown table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guildhall_core::{Domain, Name, OrgId};
use guildhall_db::accounts::NewAccount;
use guildhall_db::instances::{ConnectMethod, NewConnection};
use guildhall_db::orgs::NewOrganisation;
use guildhall_db::secrets::{Keyring, SecretKey, SecretValue};
use guildhall_db::Db;
use guildhall_lists::lists::{
    create_list, rebuild_list, ListSource, NewList, Plan, Policy, ThresholdKind,
};
use guildhall_lists::push::{plan_instance, run_push, subscribe, Mode};
use guildhall_lists::sources::{
    create_source, refresh_source, NewSource, RefreshOutcome, SourceSpec,
};
use guildhall_lists::{Actor, Services};
use guildhall_mastodon::ClientConfig;
use tokio::io::{AsyncBufReadExt, BufReader};

fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0 // utime + stime, CLK_TCK = 100
}

fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

struct Row {
    phase: String,
    wall: f64,
    cpu: f64,
    what: String,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

async fn push_all(svc: &Services, orgs: &[OrgId]) -> (usize, usize) {
    // Plans, then the automatic pushes, 4 instances at a time.
    let mut handles = Vec::new();
    for chunk in orgs.chunks(orgs.len().div_ceil(4).max(1)) {
        let svc = svc.clone();
        let chunk = chunk.to_vec();
        handles.push(tokio::spawn(async move {
            let mut steps = 0usize;
            let mut pushes = 0usize;
            for org in chunk {
                let plan = plan_instance(&svc, org).await.unwrap();
                if let Some(p) = plan.automatic {
                    let done = run_push(&svc, p).await.unwrap();
                    steps += usize::try_from(
                        done.counts.done
                            + done.counts.held
                            + done.counts.skipped
                            + done.counts.failed,
                    )
                    .unwrap_or(0);
                    pushes += 1;
                }
            }
            (steps, pushes)
        }));
    }
    let mut total = (0, 0);
    for h in handles {
        let (s, p) = h.await.unwrap();
        total.0 += s;
        total.1 += p;
    }
    total
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(arg(&args, "--data").expect("--data DIR"));
    let update = PathBuf::from(arg(&args, "--update").expect("--update DIR"));
    let changed: usize = arg(&args, "--changed")
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let n_inst: usize = arg(&args, "--instances")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let pct: f64 = arg(&args, "--pct")
        .and_then(|s| s.parse().ok())
        .unwrap_or(50.0);
    let mut files: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".csv"))
        .collect();
    files.sort();

    // The fakes and the file server, in their own process.
    let exe = std::env::current_exe().unwrap();
    let fakes_bin = exe.with_file_name("bench_fakes");
    let mut child = tokio::process::Command::new(fakes_bin)
        .arg(n_inst.to_string())
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run bench_fakes (build it with --examples)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut files_url = String::new();
    let mut fake_urls = Vec::new();
    while let Some(l) = lines.next_line().await.unwrap() {
        if let Some(u) = l.strip_prefix("files ") {
            files_url = u.to_owned();
        } else if let Some(u) = l.strip_prefix("fake ") {
            fake_urls.push(u.to_owned());
        } else if l == "ready" {
            break;
        }
    }

    let db_url = arg(&args, "--db").unwrap_or_else(|| {
        format!(
            "sqlite://{}/guildhall-lists-bench-{}.db",
            std::env::temp_dir().display(),
            std::process::id()
        )
    });
    let db = Db::connect(&db_url).await.unwrap();
    db.migrate().await.unwrap();
    let svc = Services {
        db: db.clone(),
        keyring: Arc::new(Keyring::new(SecretKey::generate(), Vec::new())),
        client: ClientConfig {
            timeout: Duration::from_secs(120),
            ..ClientConfig::default()
        },
    };
    let owner = db
        .create_account(&NewAccount {
            email: "bench@coop.example".parse().unwrap(),
            display_name: "Bench".parse().unwrap(),
            password: "correct horse battery".parse().unwrap(),
            site_admin: true,
        })
        .await
        .unwrap();
    let actor = Actor::person(owner.id, "bench@coop.example");
    let coop = db
        .create_organisation(
            &NewOrganisation::cooperative("Bench Co-op".parse::<Name>().unwrap()),
            owner.id,
        )
        .await
        .unwrap()
        .id;
    let mut sources = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let s = create_source(
            &db,
            &svc.keyring,
            coop,
            &actor,
            &NewSource {
                name: f.clone(),
                spec: SourceSpec::Url {
                    url: format!("{files_url}/{f}"),
                    format: None,
                    bearer: None,
                },
                refresh_every: Duration::from_secs(86_400),
            },
        )
        .await
        .unwrap();
        sources.push(ListSource {
            weight: 1.0 + (i % 3) as f64 * 0.5,
            ..ListSource::new(s.id)
        });
    }
    let list = create_list(
        &db,
        coop,
        &actor,
        &NewList {
            name: "Bench".into(),
            description: String::new(),
            public: true,
            policy: Policy {
                plan: Plan::Max,
                threshold: pct,
                threshold_type: ThresholdKind::Pct,
                subdomains: false,
                holds: vec![],
            },
            sources,
        },
    )
    .await
    .unwrap();
    let ids: Vec<i64> = list.sources.iter().map(|s| s.source_id).collect();
    let mut orgs = Vec::new();
    for (i, url) in fake_urls.iter().enumerate() {
        let d = format!("inst{i}.example");
        let org = db
            .create_organisation(
                &NewOrganisation::instance(
                    d.parse::<Name>().unwrap(),
                    d.parse::<Domain>().unwrap(),
                ),
                owner.id,
            )
            .await
            .unwrap()
            .id;
        db.save_instance_connection(
            &svc.keyring,
            org,
            &NewConnection {
                base_url: url.clone(),
                method: ConnectMethod::Token,
                client: None,
                token: SecretValue::new(b"tok".to_vec()),
                scopes: None,
            },
        )
        .await
        .unwrap();
        subscribe(&db, org, &actor, list.id, Mode::Automatic, 1_000_000, None)
            .await
            .unwrap();
        orgs.push(org);
    }

    let mut rows: Vec<Row> = Vec::new();
    for round in 1..=2 {
        if round == 2 {
            for f in files.iter().take(changed) {
                std::fs::copy(update.join(f), data.join(f)).unwrap();
            }
        }
        let (t, c) = (Instant::now(), cpu_seconds());
        let mut outcomes = (0, 0, 0);
        let mut changes = 0;
        for id in &ids {
            let r = refresh_source(&svc, *id).await.unwrap();
            match r.outcome {
                RefreshOutcome::Changed => outcomes.0 += 1,
                RefreshOutcome::NotModified => outcomes.1 += 1,
                _ => outcomes.2 += 1,
            }
            changes += r.added + r.changed + r.removed;
        }
        rows.push(Row {
            phase: format!("{round}. refresh {} sources", ids.len()),
            wall: t.elapsed().as_secs_f64(),
            cpu: cpu_seconds() - c,
            what: format!(
                "{} changed, {} not modified (304), {} other; {changes} source changes stored",
                outcomes.0, outcomes.1, outcomes.2
            ),
        });
        let (t, c) = (Instant::now(), cpu_seconds());
        let r = rebuild_list(&db, list.id).await.unwrap();
        let size = guildhall_lists::lists::list(&db, None, list.id)
            .await
            .unwrap()
            .size;
        rows.push(Row {
            phase: format!("{round}. rebuild list"),
            wall: t.elapsed().as_secs_f64(),
            cpu: cpu_seconds() - c,
            what: format!(
                "{} changes published (seq {}); list size {size}",
                r.published, r.seq
            ),
        });
        let (t, c) = (Instant::now(), cpu_seconds());
        let (steps, pushes) = push_all(&svc, &orgs).await;
        rows.push(Row {
            phase: format!("{round}. plan + push to {} instances", orgs.len()),
            wall: t.elapsed().as_secs_f64(),
            cpu: cpu_seconds() - c,
            what: format!("{pushes} pushes, {steps} steps (one API write each, plus a follower check per new suspend)"),
        });
    }
    println!("| phase | wall s | Guildhall CPU s | what |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.2} | {:.2} | {} |",
            r.phase, r.wall, r.cpu, r.what
        );
    }
    println!(
        "\npeak RSS of the Guildhall process: {:.0} MB; database: {}",
        peak_rss_mb(),
        if db_url.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        }
    );
    drop(child.stdin.take());
    let _ = child.wait().await;
    db.close().await;
    if db_url.starts_with("sqlite://") {
        let f = db_url.trim_start_matches("sqlite://");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{f}{suffix}"));
        }
    }
}
