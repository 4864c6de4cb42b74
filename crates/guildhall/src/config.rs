//! The server's configuration, built once — file, then environment, then flags — and passed in.
//!
//! See docs/operations.md for every key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

/// The configuration file (`--config FILE` or `GUILDHALL_CONFIG`), TOML. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    database_url: Option<String>,
    db_max_connections: Option<u32>,
    listen: Option<String>,
    base_url: Option<String>,
    body_limit: Option<usize>,
    upload_limit: Option<usize>,
    webhook_limit: Option<usize>,
    session_lifetime_secs: Option<u64>,
    invitation_lifetime_secs: Option<u64>,
    secure_cookies: Option<bool>,
    secret_key: Option<String>,
    secret_key_file: Option<PathBuf>,
    allow_private_addresses: Option<bool>,
    #[serde(default)]
    worker: FileWorker,
}

/// The `[worker]` table of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWorker {
    concurrency: Option<usize>,
    poll_interval_ms: Option<u64>,
    lease_ms: Option<u64>,
    backoff_base_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    test_jobs: Option<bool>,
}

/// Command-line flags that override the file and the environment.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Flags {
    /// Configuration file (TOML). Default: $GUILDHALL_CONFIG, else none.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://FILE or postgres://USER@HOST/DB.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Address to listen on (serve), e.g. 127.0.0.1:8080; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Public base URL (used in invitation links).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// How many jobs this process's worker runs at once.
    #[arg(long, value_name = "N")]
    pub worker_concurrency: Option<usize>,
    /// Let server-side requests (instances, blocklist URLs and feeds) reach loopback, private
    /// and link-local addresses. Off by default: users type those URLs. While off, no proxy
    /// is used (`HTTP_PROXY`/`HTTPS_PROXY` are ignored): a proxy would reach them for us.
    #[arg(long)]
    pub allow_private_addresses: bool,
}

/// The built configuration.
#[derive(Clone)]
pub struct Config {
    /// Database URL.
    pub database_url: String,
    /// Largest connection pool.
    pub db_max_connections: u32,
    /// Listen address.
    pub listen: SocketAddr,
    /// Public base URL; `None`: `http://` + the address actually bound.
    pub base_url: Option<String>,
    /// Request body limit in bytes.
    pub body_limit: usize,
    /// Body limit in bytes of the routes that take an uploaded file (blocklist sources).
    pub upload_limit: usize,
    /// Body limit in bytes of the webhook route (member instances' deliveries).
    pub webhook_limit: usize,
    /// Sign-in lifetime.
    pub session_lifetime: Duration,
    /// Invitation lifetime.
    pub invitation_lifetime: Duration,
    /// `Secure` cookies.
    pub secure_cookies: bool,
    /// Secret keys given directly (hex, comma-separated, current first).
    pub secret_key: Option<String>,
    /// Key file used when no key is given directly (created on first run).
    pub secret_key_file: PathBuf,
    /// Whether server-side requests may reach non-public addresses (loopback, private,
    /// link-local, …). `false` (the default) guards against server-side request forgery.
    pub allow_private_addresses: bool,
    /// Worker settings.
    pub worker: WorkerSettings,
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Jobs run at once per process.
    pub concurrency: usize,
    /// Wait when idle.
    pub poll_interval: Duration,
    /// Job lease.
    pub lease: Duration,
    /// First retry delay.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Registers the test-only job kind `guildhall.test.record`.
    pub test_jobs: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("db_max_connections", &self.db_max_connections)
            .field("listen", &self.listen)
            .field("base_url", &self.base_url)
            .field("body_limit", &self.body_limit)
            .field("upload_limit", &self.upload_limit)
            .field("webhook_limit", &self.webhook_limit)
            .field("session_lifetime", &self.session_lifetime)
            .field("invitation_lifetime", &self.invitation_lifetime)
            .field("secure_cookies", &self.secure_cookies)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field("secret_key_file", &self.secret_key_file)
            .field("allow_private_addresses", &self.allow_private_addresses)
            .field("worker", &self.worker)
            .finish()
    }
}

/// A database URL with any password replaced by `***` (for messages).
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_owned()
}

/// The default database: a file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://guildhall.db";
/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default key file (in the working directory).
pub const DEFAULT_KEY_FILE: &str = "guildhall.key";

fn parse_env<T: std::str::FromStr>(
    env: &HashMap<String, String>,
    key: &str,
) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match env.get(key) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| anyhow::anyhow!("environment variable {key}: {e} (got {v:?})")),
    }
}

fn parse_bool_env(env: &HashMap<String, String>, key: &str) -> anyhow::Result<Option<bool>> {
    match env.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => match v.as_str() {
            "1" | "true" | "yes" | "on" => Ok(Some(true)),
            "0" | "false" | "no" | "off" => Ok(Some(false)),
            _ => bail!("environment variable {key}: expected true or false (got {v:?})"),
        },
    }
}

impl Config {
    /// Builds the configuration from the process environment and `flags`.
    pub fn load(flags: &Flags) -> anyhow::Result<Config> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Config::build(flags, &env)
    }

    /// Builds the configuration: the file (from `--config`, else `GUILDHALL_CONFIG`), then the
    /// environment in `env`, then `flags`; defaults for whatever is left.
    pub fn build(flags: &Flags, env: &HashMap<String, String>) -> anyhow::Result<Config> {
        let path = flags.config.clone().or_else(|| {
            env.get("GUILDHALL_CONFIG")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        });
        let file = match &path {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let w = &file.worker;

        let database_url = flags
            .database_url
            .clone()
            .or_else(|| {
                env.get("GUILDHALL_DATABASE_URL")
                    .filter(|s| !s.is_empty())
                    .cloned()
            })
            .or_else(|| env.get("DATABASE_URL").filter(|s| !s.is_empty()).cloned())
            .or(file.database_url.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let listen_text = flags
            .listen
            .clone()
            .or(parse_env::<String>(env, "GUILDHALL_LISTEN")?)
            .or(file.listen.clone())
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("listen address {listen_text:?} (expected HOST:PORT, e.g. 127.0.0.1:8080)")
        })?;
        let base_url = flags
            .base_url
            .clone()
            .or(parse_env(env, "GUILDHALL_BASE_URL")?)
            .or(file.base_url.clone());
        let ms = Duration::from_millis;
        let config = Config {
            database_url,
            db_max_connections: parse_env(env, "GUILDHALL_DB_MAX_CONNECTIONS")?
                .or(file.db_max_connections)
                .unwrap_or(10),
            listen,
            base_url,
            body_limit: parse_env(env, "GUILDHALL_BODY_LIMIT")?
                .or(file.body_limit)
                .unwrap_or(64 * 1024),
            upload_limit: parse_env(env, "GUILDHALL_UPLOAD_LIMIT")?
                .or(file.upload_limit)
                .unwrap_or(16 * 1024 * 1024),
            webhook_limit: parse_env(env, "GUILDHALL_WEBHOOK_LIMIT")?
                .or(file.webhook_limit)
                .unwrap_or(1024 * 1024),
            session_lifetime: Duration::from_secs(
                parse_env(env, "GUILDHALL_SESSION_LIFETIME_SECS")?
                    .or(file.session_lifetime_secs)
                    .unwrap_or(14 * 24 * 3600),
            ),
            invitation_lifetime: Duration::from_secs(
                parse_env(env, "GUILDHALL_INVITATION_LIFETIME_SECS")?
                    .or(file.invitation_lifetime_secs)
                    .unwrap_or(7 * 24 * 3600),
            ),
            secure_cookies: parse_bool_env(env, "GUILDHALL_SECURE_COOKIES")?
                .or(file.secure_cookies)
                .unwrap_or(false),
            secret_key: env
                .get("GUILDHALL_SECRET_KEY")
                .filter(|s| !s.trim().is_empty())
                .cloned()
                .or(file.secret_key.clone()),
            secret_key_file: parse_env::<String>(env, "GUILDHALL_SECRET_KEY_FILE")?
                .map(PathBuf::from)
                .or(file.secret_key_file.clone())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_KEY_FILE)),
            allow_private_addresses: flags.allow_private_addresses
                || parse_bool_env(env, "GUILDHALL_ALLOW_PRIVATE_ADDRESSES")?
                    .or(file.allow_private_addresses)
                    .unwrap_or(false),
            worker: WorkerSettings {
                concurrency: flags
                    .worker_concurrency
                    .or(parse_env(env, "GUILDHALL_WORKER_CONCURRENCY")?)
                    .or(w.concurrency)
                    .unwrap_or(4),
                poll_interval: ms(parse_env(env, "GUILDHALL_WORKER_POLL_INTERVAL_MS")?
                    .or(w.poll_interval_ms)
                    .unwrap_or(1000)),
                lease: ms(parse_env(env, "GUILDHALL_JOB_LEASE_MS")?
                    .or(w.lease_ms)
                    .unwrap_or(60_000)),
                backoff_base: ms(parse_env(env, "GUILDHALL_JOB_BACKOFF_BASE_MS")?
                    .or(w.backoff_base_ms)
                    .unwrap_or(5_000)),
                backoff_max: ms(parse_env(env, "GUILDHALL_JOB_BACKOFF_MAX_MS")?
                    .or(w.backoff_max_ms)
                    .unwrap_or(3_600_000)),
                test_jobs: parse_bool_env(env, "GUILDHALL_TEST_JOBS")?
                    .or(w.test_jobs)
                    .unwrap_or(false),
            },
        };
        if config.worker.concurrency == 0 {
            bail!("worker concurrency must be at least 1");
        }
        if config.worker.lease < Duration::from_millis(100) {
            bail!("job lease must be at least 100 ms");
        }
        if config.body_limit == 0 {
            bail!("body_limit must be at least 1 byte");
        }
        if config.upload_limit == 0 {
            bail!("upload_limit must be at least 1 byte");
        }
        if config.webhook_limit == 0 {
            bail!("webhook_limit must be at least 1 byte");
        }
        Ok(config)
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading configuration file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("configuration file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_any_configuration() {
        let c = Config::build(&Flags::default(), &env(&[])).unwrap();
        assert_eq!(c.database_url, "sqlite://guildhall.db");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.secret_key_file, PathBuf::from("guildhall.key"));
        assert!(!c.worker.test_jobs);
        assert_eq!(
            (c.body_limit, c.upload_limit, c.webhook_limit),
            (64 * 1024, 16 * 1024 * 1024, 1024 * 1024)
        );
    }

    #[test]
    fn webhook_limit_from_the_environment() {
        let e = env(&[("GUILDHALL_WEBHOOK_LIMIT", "2000")]);
        let c = Config::build(&Flags::default(), &e).unwrap();
        assert_eq!((c.body_limit, c.webhook_limit), (64 * 1024, 2000));
        for bad in ["0", "lots"] {
            let e = env(&[("GUILDHALL_WEBHOOK_LIMIT", bad)]);
            let err = format!("{:#}", Config::build(&Flags::default(), &e).unwrap_err());
            assert!(
                err.contains("webhook_limit") || err.contains("GUILDHALL_WEBHOOK_LIMIT"),
                "{err}"
            );
        }
    }

    #[test]
    fn upload_limit_from_file_and_environment() {
        let dir = std::env::temp_dir().join(format!("guildhall-upload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.toml");
        std::fs::write(
            &path,
            "upload_limit = 1000
",
        )
        .unwrap();
        let p = path.display().to_string();
        let c = Config::build(&Flags::default(), &env(&[("GUILDHALL_CONFIG", &p)])).unwrap();
        assert_eq!((c.body_limit, c.upload_limit), (64 * 1024, 1000));
        let e = env(&[("GUILDHALL_CONFIG", &p), ("GUILDHALL_UPLOAD_LIMIT", "2000")]);
        assert_eq!(
            Config::build(&Flags::default(), &e).unwrap().upload_limit,
            2000
        );
        for bad in ["0", "lots"] {
            let err = Config::build(&Flags::default(), &env(&[("GUILDHALL_UPLOAD_LIMIT", bad)]))
                .unwrap_err();
            assert!(
                format!("{err:#}").contains("upload_limit")
                    || format!("{err:#}").contains("GUILDHALL_UPLOAD_LIMIT"),
                "{err:#}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_then_environment_then_flags() {
        let dir = std::env::temp_dir().join(format!("guildhall-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.toml");
        std::fs::write(
            &path,
            "database_url = \"sqlite://file.db\"\nlisten = \"127.0.0.1:9000\"\nbody_limit = 10\n\
             secret_key = \"aa\"\n[worker]\nlease_ms = 5000\nconcurrency = 2\n",
        )
        .unwrap();
        let p = path.display().to_string();
        // File only.
        let c = Config::build(&Flags::default(), &env(&[("GUILDHALL_CONFIG", &p)])).unwrap();
        assert_eq!(c.database_url, "sqlite://file.db");
        assert_eq!(c.body_limit, 10);
        assert_eq!(c.worker.lease, Duration::from_millis(5000));
        assert!(!format!("{c:?}").contains("\"aa\""));
        // The environment beats the file.
        let e = env(&[
            ("GUILDHALL_CONFIG", &p),
            ("DATABASE_URL", "postgres://u:pw@h/db"),
            ("GUILDHALL_LISTEN", "127.0.0.1:9001"),
            ("GUILDHALL_WORKER_CONCURRENCY", "3"),
        ]);
        let c = Config::build(&Flags::default(), &e).unwrap();
        assert_eq!(c.database_url, "postgres://u:pw@h/db");
        assert!(!format!("{c:?}").contains("pw"));
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.worker.concurrency, 3);
        // Flags beat both.
        let f = Flags {
            database_url: Some("sqlite://flag.db".into()),
            listen: Some("127.0.0.1:9002".into()),
            worker_concurrency: Some(5),
            ..Flags::default()
        };
        let c = Config::build(&f, &e).unwrap();
        assert_eq!(c.database_url, "sqlite://flag.db");
        assert_eq!((c.listen.port(), c.worker.concurrency), (9002, 5));
        // Private addresses: off by default; the environment or the flag turns them on.
        assert!(!c.allow_private_addresses);
        let on = env(&[("GUILDHALL_ALLOW_PRIVATE_ADDRESSES", "yes")]);
        assert!(
            Config::build(&Flags::default(), &on)
                .unwrap()
                .allow_private_addresses
        );
        let off = env(&[("GUILDHALL_ALLOW_PRIVATE_ADDRESSES", "false")]);
        let flag = Flags {
            allow_private_addresses: true,
            ..Flags::default()
        };
        assert!(Config::build(&flag, &off).unwrap().allow_private_addresses);
        assert!(Config::build(
            &Flags::default(),
            &env(&[("GUILDHALL_ALLOW_PRIVATE_ADDRESSES", "maybe")])
        )
        .is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_values_name_their_source() {
        let err = Config::build(&Flags::default(), &env(&[("GUILDHALL_BODY_LIMIT", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("GUILDHALL_BODY_LIMIT"), "{err}");
        let dir = std::env::temp_dir().join(format!("guildhall-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap();
        let f = Flags {
            config: Some(path.clone()),
            ..Flags::default()
        };
        let err = format!("{:#}", Config::build(&f, &env(&[])).unwrap_err());
        assert!(
            err.contains("g.toml") && err.contains("listen_port") && err.contains("line 2"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            redact_url("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
    }
}
