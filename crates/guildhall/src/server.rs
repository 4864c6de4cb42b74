//! The server commands: `serve`, `worker`, `migrate` and `admin …`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use guildhall_core::{Email, Name, Password};
use guildhall_db::accounts::NewAccount;
use guildhall_db::audit::NewAuditEntry;
use guildhall_db::jobs::{run_worker, Backoff, Job, Registry, WorkerConfig};
use guildhall_db::secrets::Keyring;
use guildhall_db::{Db, DbOptions};

use crate::config::{redact_url, Config, Flags};

/// `guildhall serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    flags: Flags,
    /// Do not run the job worker in this process (run `guildhall worker` separately).
    #[arg(long)]
    no_worker: bool,
}

/// `guildhall worker`, `guildhall migrate`.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    #[command(flatten)]
    flags: Flags,
}

/// `guildhall admin …`.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Create an owner account (runs this Guildhall: may create organisations). The password is
    /// asked for on a terminal, or read from the first line of standard input otherwise.
    CreateOwner {
        /// Sign-in address.
        #[arg(long)]
        email: String,
        /// Display name (default: the part of the address before '@').
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        flags: Flags,
    },
    /// Check the audit log's hash chain; names the first broken link (exit status 1 then).
    VerifyAudit {
        #[command(flatten)]
        flags: Flags,
    },
    /// Make a new secret key current and re-encrypt every stored secret with it. With a key
    /// file, the file is rewritten (the old keys are kept after the new one unless --drop-old).
    /// With GUILDHALL_SECRET_KEY, the new key is printed once: put it first in that variable.
    RotateKey {
        /// Remove the older keys from the key file after re-encrypting.
        #[arg(long)]
        drop_old: bool,
        #[command(flatten)]
        flags: Flags,
    },
}

/// The job kind that the multi-process tests use (see `guildhall_db::testing::run_test_job`).
pub const TEST_JOB_KIND: &str = guildhall_db::testing::TEST_JOB_KIND;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let opts = DbOptions {
        max_connections: config.db_max_connections,
        ..DbOptions::default()
    };
    let db = Db::connect_with(&config.database_url, &opts)
        .await
        .with_context(|| format!("opening the database {}", redact_url(&config.database_url)))?;
    db.migrate().await.context("migrating the database")?;
    Ok(db)
}

/// The keyring from the configuration: the configured key(s), else the key file (created with
/// a new key, mode 0600, if missing).
pub fn keyring(config: &Config) -> anyhow::Result<Keyring> {
    match &config.secret_key {
        Some(k) => Ok(Keyring::parse(k, "GUILDHALL_SECRET_KEY / secret_key")?),
        None => Ok(Keyring::load_or_create_file(&config.secret_key_file)?),
    }
}

/// The Mastodon/HTTP client settings: only public addresses unless `allow_private_addresses`.
pub fn mastodon_client(config: &Config) -> guildhall_mastodon::ClientConfig {
    guildhall_mastodon::ClientConfig {
        outbound: if config.allow_private_addresses {
            guildhall_mastodon::Outbound::Any
        } else {
            guildhall_mastodon::Outbound::PublicOnly
        },
        ..guildhall_mastodon::ClientConfig::default()
    }
}

/// The job handlers this binary knows: the moderation and blocklist jobs (which talk to member
/// instances with tokens unsealed by `keys`), and the test jobs when enabled.
pub fn registry(config: &Config, db: &Db, keys: &Keyring) -> Registry {
    let mut r = Registry::new();
    let keyring = std::sync::Arc::new(keys.clone());
    let client = mastodon_client(config);
    guildhall_moderation::register_jobs(
        &mut r,
        &guildhall_moderation::Services {
            db: db.clone(),
            keyring: keyring.clone(),
            client: client.clone(),
        },
    );
    guildhall_lists::register_jobs(
        &mut r,
        &guildhall_lists::Services {
            db: db.clone(),
            keyring,
            client,
        },
    );
    let db = Some(db.clone());
    if config.worker.test_jobs {
        // Registered only when enabled; the handler gets the database through a clone.
        if let Some(db) = db {
            r.register(TEST_JOB_KIND, move |job: Job| {
                let db = db.clone();
                async move { guildhall_db::testing::run_test_job(&db, &job).await }
            });
        }
    }
    r
}

/// Worker settings from the configuration.
fn worker_config(config: &Config) -> WorkerConfig {
    WorkerConfig {
        concurrency: config.worker.concurrency,
        poll_interval: config.worker.poll_interval,
        lease: config.worker.lease,
        backoff: Backoff {
            base: config.worker.backoff_base,
            max: config.worker.backoff_max,
        },
        ..WorkerConfig::new()
    }
}

async fn enable_test_jobs(config: &Config, db: &Db) -> anyhow::Result<()> {
    if config.worker.test_jobs {
        guildhall_db::testing::create_test_job_runs(db).await?;
    }
    Ok(())
}

/// Resumes the schedules of recurring jobs whose chain died (e.g. a report sync whose job went
/// dead after repeated database errors). Idempotent; run where a worker starts.
async fn resume_schedules(db: &Db) -> anyhow::Result<()> {
    guildhall_moderation::schedule_syncs(db)
        .await
        .context("scheduling the report syncs of linked instances")?;
    Ok(())
}

/// Removes expired sessions now and every ten minutes (any replica may do it; it is idempotent).
fn spawn_session_cleanup(db: Db) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            if let Err(e) = db.delete_expired_sessions().await {
                eprintln!("guildhall: removing expired sessions failed: {e}");
            }
        }
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// `guildhall serve`.
pub fn serve(args: ServeArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.flags)?;
    runtime()?.block_on(async move {
        let db = open_db(&config).await?;
        // Make sure the key exists before anyone needs it (creates the key file on first run);
        // the web layer seals instance tokens and webhook secrets with it.
        let keys = keyring(&config)?;
        enable_test_jobs(&config, &db).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let bound = listener.local_addr()?;
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"));
        let web_config = guildhall_web::WebConfig {
            base_url: base_url.clone(),
            body_limit: config.body_limit,
            upload_limit: config.upload_limit,
            webhook_limit: config.webhook_limit,
            session_lifetime: config.session_lifetime,
            invitation_lifetime: config.invitation_lifetime,
            secure_cookies: config.secure_cookies,
        };
        let registry = registry(&config, &db, &keys);
        let state = guildhall_web::AppState::new(db.clone(), web_config)
            .with_keyring(keys)
            .with_mastodon_client(mastodon_client(&config));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        let worker = if args.no_worker {
            None
        } else {
            resume_schedules(&db).await?;
            Some(tokio::spawn(run_worker(
                db.clone(),
                registry,
                worker_config(&config),
                stopped(stop_rx.clone()),
            )))
        };
        writeln!(
            out,
            "Guildhall is running on {}",
            redact_url(&config.database_url)
        )?;
        writeln!(out, "listening on http://{bound}")?;
        writeln!(out, "open {base_url}/ in a browser")?;
        if !db.any_account_exists().await? {
            writeln!(
                out,
                "No account exists yet: open {base_url}/setup from this machine, or run \
                 `guildhall admin create-owner --email you@example.org`."
            )?;
        }
        out.flush()?;
        let server = tokio::spawn(guildhall_web::serve(listener, state, stopped(stop_rx)));
        let cleanup = spawn_session_cleanup(db.clone());
        shutdown_signal().await;
        cleanup.abort();
        let _ = stop_tx.send(true);
        server.await.context("the HTTP server task")??;
        if let Some(w) = worker {
            w.await.context("the worker task")?;
        }
        db.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// `guildhall worker`.
pub fn worker(args: CommonArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.flags)?;
    runtime()?.block_on(async move {
        let db = open_db(&config).await?;
        enable_test_jobs(&config, &db).await?;
        let wc = worker_config(&config);
        let keys = keyring(&config)?;
        let registry = registry(&config, &db, &keys);
        resume_schedules(&db).await?;
        writeln!(
            out,
            "worker {} ready (kinds: {})",
            wc.name,
            registry.kinds().join(", ")
        )?;
        out.flush()?;
        run_worker(db.clone(), registry, wc, shutdown_signal()).await;
        db.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// `guildhall migrate`.
pub fn migrate(args: CommonArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.flags)?;
    runtime()?.block_on(async move {
        let db = open_db(&config).await?;
        db.close().await;
        writeln!(out, "{} is up to date", redact_url(&config.database_url))?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Reads the new owner's password: from the terminal (asked twice), or the first line of
/// standard input.
fn read_password() -> anyhow::Result<Password> {
    let text = if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Password: ").context("reading the password")?;
        let b = rpassword::prompt_password("Password again: ").context("reading the password")?;
        if a != b {
            bail!("the two passwords differ");
        }
        a
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    text.parse::<Password>()
        .map_err(|e| anyhow::anyhow!("password: {e}"))
}

/// `guildhall admin …`.
pub fn admin(cmd: AdminCommand, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::CreateOwner { email, name, flags } => {
            let email: Email = email.parse().map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            let name: Name = name
                .unwrap_or_else(|| {
                    email
                        .as_str()
                        .split('@')
                        .next()
                        .unwrap_or("owner")
                        .to_owned()
                })
                .parse()
                .map_err(|e| anyhow::anyhow!("--name: {e}"))?;
            let config = Config::load(&flags)?;
            let password = read_password()?;
            runtime()?.block_on(async move {
                let db = open_db(&config).await?;
                let new = NewAccount {
                    email,
                    display_name: name,
                    password,
                    site_admin: true,
                };
                let account = db
                    .create_account_audited(&new, |account| {
                        Some(NewAuditEntry {
                            actor_id: None,
                            actor: "cli".into(),
                            action: "account.create_owner".into(),
                            org_id: None,
                            before: None,
                            after: Some(serde_json::json!({
                                "account_id": account.id,
                                "email": account.email,
                                "site_admin": true,
                            })),
                        })
                    })
                    .await
                    .context("creating the owner")?;
                db.close().await;
                writeln!(
                    out,
                    "created owner {} (account {})",
                    account.email, account.id
                )?;
                Ok(ExitCode::SUCCESS)
            })
        }
        AdminCommand::VerifyAudit { flags } => {
            let config = Config::load(&flags)?;
            runtime()?.block_on(async move {
                let db = open_db(&config).await?;
                let v = db.verify_audit().await?;
                db.close().await;
                match v.first_broken {
                    None => {
                        writeln!(out, "audit log intact: {} entries", v.entries)?;
                        Ok(ExitCode::SUCCESS)
                    }
                    Some(b) => {
                        writeln!(out, "audit log BROKEN at entry {}: {}", b.seq, b.reason)?;
                        Ok(ExitCode::FAILURE)
                    }
                }
            })
        }
        AdminCommand::RotateKey { drop_old, flags } => {
            let config = Config::load(&flags)?;
            let old = keyring(&config)?;
            let new = old.rotated();
            // The new key is saved (or shown) before anything is sealed with it.
            match &config.secret_key {
                None => new.write_file(&config.secret_key_file, false)?,
                Some(_) => {
                    writeln!(
                        out,
                        "New key {}. Set GUILDHALL_SECRET_KEY to this value on every process \
                         (the new key first):",
                        new.current().id()
                    )?;
                    let all: Vec<String> = new.keys().iter().map(|k| k.to_hex()).collect();
                    let shown = if drop_old {
                        new.current().to_hex()
                    } else {
                        all.join(",")
                    };
                    writeln!(out, "{shown}")?;
                }
            }
            runtime()?.block_on(async move {
                let db = open_db(&config).await?;
                let mut n = db.reseal_secrets(&new).await?;
                if config.secret_key.is_none() && drop_old {
                    Keyring::new(new.current(), Vec::new())
                        .write_file(&config.secret_key_file, false)?;
                    // A running process that read the old file just before it was rewritten
                    // may have sealed a secret under an old key since: re-seal once more while
                    // this process still has the old keys.
                    n += db.reseal_secrets(&new).await?;
                }
                db.close().await;
                writeln!(
                    out,
                    "{n} secrets re-encrypted with key {}{}",
                    new.current().id(),
                    if drop_old { "; older keys dropped" } else { "" }
                )?;
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}
