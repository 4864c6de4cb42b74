//! `guildhall blocklist …`: the offline blocklist tool.
//!
//! `merge` takes FediBlockHole's TOML configuration and flags, so a FediBlockHole user switches
//! by changing the command name; `diff` computes the changes for an instance honouring
//! ownership; `check` validates a file and lists its problems by line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::diff::{diff, DiffOptions, Ownership};
use crate::hash;
use crate::merge::{
    allow_set, ImportFields, MergeOptions, MergePlan, Merger, SourceOptions, ThresholdType,
};
use crate::read::{read_bytes, read_compact, Compact, Format};
use crate::types::{Blocklist, Level, Severity};
use crate::write;

/// FediBlockHole's default configuration path.
const DEFAULT_CONFIG: &str = "/etc/default/fediblockhole.conf.toml";
/// FediBlockHole's `URL_BLOCKLIST_MAXSIZE`.
const URL_MAXSIZE: u64 = 1024 * 1024 * 1024;

/// The `guildhall blocklist` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Merge blocklists by consensus (FediBlockHole-compatible configuration and flags).
    Merge(Box<MergeArgs>),
    /// Compute creates, updates and removals for an instance, honouring ownership.
    Diff(DiffArgs),
    /// Validate a blocklist file and list its problems by line.
    Check {
        /// The file to check.
        file: PathBuf,
        /// Input format (default: detected): csv, mastodon_csv, json, mastodon_api_public,
        /// rapidblock.csv, rapidblock.json, text.
        #[arg(long)]
        format: Option<String>,
    },
}

/// `guildhall blocklist merge`: FediBlockHole's flags plus Guildhall's extensions.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// FediBlockHole TOML configuration file.
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// Save the merged blocklist to this file.
    #[arg(short = 'o', long = "outfile")]
    pub outfile: Option<PathBuf>,
    /// Save the lists fetched to local files (in --savedir).
    #[arg(short = 'S', long = "save-intermediate")]
    pub save_intermediate: bool,
    /// Directory for intermediate lists.
    #[arg(short = 'D', long = "savedir")]
    pub savedir: Option<PathBuf>,
    /// Mergeplan: max or min.
    #[arg(short = 'm', long = "mergeplan")]
    pub mergeplan: Option<String>,
    /// Save FediBlockHole's audit file (domain,count,percent) here.
    #[arg(short = 'b', long = "block-audit-file")]
    pub block_audit_file: Option<PathBuf>,
    /// Merge threshold value.
    #[arg(long = "merge-threshold")]
    pub merge_threshold: Option<f64>,
    /// Merge threshold type: count or pct.
    #[arg(long = "merge-threshold-type")]
    pub merge_threshold_type: Option<String>,
    /// Accepted for compatibility; pushing is done by the Guildhall server.
    #[arg(long = "override-private-comment")]
    pub override_private_comment: Option<String>,
    /// Extra fields to import (repeatable).
    #[arg(short = 'I', long = "import-field")]
    pub import_fields: Vec<String>,
    /// Extra fields to export (repeatable).
    #[arg(short = 'E', long = "export-field")]
    pub export_fields: Vec<String>,
    /// Allow this domain: remove it from the result (repeatable).
    #[arg(short = 'A', long = "allow")]
    pub allow: Vec<String>,
    /// Do not fetch URL sources.
    #[arg(long = "no-fetch-url")]
    pub no_fetch_url: bool,
    /// Do not fetch instance sources.
    #[arg(long = "no-fetch-instance")]
    pub no_fetch_instance: bool,
    /// Accepted for compatibility (this tool never pushes).
    #[arg(long = "no-push-instance")]
    pub no_push_instance: bool,
    /// Accepted for compatibility (debug, info, warning, error, critical).
    #[arg(long = "loglevel")]
    pub loglevel: Option<String>,
    /// Accepted for compatibility (this tool never pushes).
    #[arg(long = "dryrun")]
    pub dryrun: bool,
    /// Print the version and exit.
    #[arg(short = 'V', long = "version")]
    pub version: bool,
    /// Guildhall: output format: fediblockhole (default), mastodon or json.
    #[arg(long = "output-format", default_value = "fediblockhole")]
    pub output_format: String,
    /// Guildhall: write the full audit CSV (sources, severities, score, outcome) here.
    #[arg(long = "audit")]
    pub audit: Option<PathBuf>,
    /// Guildhall: subdomain-aware coverage (a block on example.com covers a.example.com).
    #[arg(long = "subdomains")]
    pub subdomains: bool,
    /// Guildhall: extra blocklist sources (paths or URLs) after the configured ones.
    pub sources: Vec<String>,
}

/// `guildhall blocklist diff`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    /// The merged list (any format).
    pub desired: PathBuf,
    /// The instance's current blocks (admin API JSON or any other format).
    pub current: PathBuf,
    /// Ownership state JSON (`{"managed": {domain: {...}}, "locked": [...]}`); without it
    /// every current block is the admin's.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Write the ownership state after the changes here.
    #[arg(long = "state-out")]
    pub state_out: Option<PathBuf>,
    /// Retract by downgrading to noop instead of deleting.
    #[arg(long = "keep-record")]
    pub keep_record: bool,
}

/// Runs one `guildhall blocklist` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    // Standard error is locked per write, not for the whole command: a merge's worker threads
    // writing to it (`eprintln!`) would otherwise wait for the lock while the command waits
    // for them.
    run_to(cmd, &mut stdout.lock(), &mut std::io::stderr())
}

/// Runs a subcommand writing its report to `out` and diagnostics to `err`.
pub fn run_to(cmd: Command, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Check { file, format } => check(&file, format.as_deref(), out),
        Command::Merge(args) => merge_cmd(&args, out, err),
        Command::Diff(args) => diff_cmd(&args, out),
    }
}

fn parse_format(f: Option<&str>) -> anyhow::Result<Option<Format>> {
    Ok(match f {
        None => None,
        Some(s) => Some(s.parse::<Format>()?),
    })
}

fn check(file: &Path, format: Option<&str>, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let fmt = parse_format(format)?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let detected = fmt.unwrap_or_else(|| crate::read::detect(&bytes));
    let l = read_bytes(&bytes, &file.display().to_string(), Some(detected));
    let n = |s| l.entries.iter().filter(|e| e.severity == s).count();
    writeln!(
        out,
        "{}: format {detected}; {} blocks ({} suspend, {} silence, {} noop), {} obfuscated",
        file.display(),
        l.entries.len(),
        n(Severity::Suspend),
        n(Severity::Silence),
        n(Severity::Noop),
        l.obfuscated.len()
    )?;
    for p in &l.problems {
        writeln!(out, "{p}")?;
    }
    let errors = l.error_count();
    let warnings = l
        .problems
        .iter()
        .filter(|p| p.level == Level::Warning)
        .count();
    writeln!(out, "{errors} errors, {warnings} warnings")?;
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One source as configured.
#[derive(Debug, Clone)]
struct SourceSpec {
    location: String,
    format: Option<Format>,
    opts: SourceOptions,
}

fn toml_str_list(v: Option<&toml::Value>, key: &str) -> anyhow::Result<Vec<String>> {
    match v {
        None => Ok(Vec::new()),
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .with_context(|| format!("`{key}` must be a list of strings"))
            })
            .collect(),
        Some(_) => bail!("`{key}` must be a list of strings"),
    }
}

fn url_sources(
    conf: &toml::Table,
    key: &str,
    base_import: ImportFields,
) -> anyhow::Result<Vec<SourceSpec>> {
    let Some(v) = conf.get(key) else {
        return Ok(Vec::new());
    };
    let arr = v
        .as_array()
        .with_context(|| format!("`{key}` must be a list of tables"))?;
    let mut out = Vec::new();
    for (i, item) in arr.iter().enumerate() {
        let t = item
            .as_table()
            .with_context(|| format!("`{key}` item {i} must be a table"))?;
        let url = t
            .get("url")
            .and_then(toml::Value::as_str)
            .with_context(|| format!("`{key}` item {i} has no `url`"))?;
        let format = match t.get("format").and_then(toml::Value::as_str) {
            Some(f) => Some(
                f.parse::<Format>()
                    .with_context(|| format!("`{key}` item {i}"))?,
            ),
            None => None,
        };
        let mut opts = SourceOptions::new(url);
        if let Some(ms) = t.get("max_severity").and_then(toml::Value::as_str) {
            opts.max_severity = Severity::parse(ms)
                .with_context(|| format!("`{key}` item {i}: bad max_severity {ms:?}"))?;
        }
        if let Some(w) = t.get("weight") {
            let w = w
                .as_float()
                .or_else(|| w.as_integer().map(|x| x as f64))
                .filter(|w| w.is_finite() && *w >= 0.0)
                .with_context(|| format!("`{key}` item {i}: weight must be a number >= 0"))?;
            opts.weight = w;
        }
        let fields = toml_str_list(t.get("import_fields"), "import_fields")?;
        if !fields.is_empty() {
            let mut f = base_import;
            for n in &fields {
                f.add(n)?;
            }
            opts.import = Some(f);
        }
        out.push(SourceSpec {
            location: url.to_string(),
            format,
            opts,
        });
    }
    Ok(out)
}

fn instance_sources(conf: &toml::Table) -> anyhow::Result<Vec<SourceSpec>> {
    let Some(v) = conf.get("blocklist_instance_sources") else {
        return Ok(Vec::new());
    };
    let arr = v
        .as_array()
        .context("`blocklist_instance_sources` must be a list of tables")?;
    let mut out = Vec::new();
    for item in arr {
        let Some(t) = item.as_table() else {
            bail!("`blocklist_instance_sources` items must be tables")
        };
        let domain = t
            .get("domain")
            .and_then(toml::Value::as_str)
            .context("instance source without `domain`")?;
        let scheme = t
            .get("scheme")
            .and_then(toml::Value::as_str)
            .unwrap_or("https");
        let admin = t
            .get("admin")
            .and_then(toml::Value::as_bool)
            .unwrap_or(false);
        let token = t
            .get("token")
            .and_then(toml::Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                t.get("token_env_var")
                    .and_then(toml::Value::as_str)
                    .and_then(|v| std::env::var(v).ok())
            })
            .or_else(|| {
                std::env::var(format!("{}_TOKEN", domain.to_uppercase().replace('.', "_"))).ok()
            });
        let (path, format) = if admin {
            ("/api/v1/admin/domain_blocks", Format::AdminJson)
        } else {
            ("/api/v1/instance/domain_blocks", Format::PublicJson)
        };
        let mut location = format!("{scheme}://{domain}{path}");
        if let Some(tok) = token {
            location = format!("{location}#token={tok}");
        }
        let mut opts = SourceOptions::new(domain);
        if let Some(ms) = t.get("max_severity").and_then(toml::Value::as_str) {
            opts.max_severity = Severity::parse(ms).context("bad max_severity")?;
        }
        if let Some(w) = t
            .get("weight")
            .and_then(|w| w.as_float().or(w.as_integer().map(|x| x as f64)))
        {
            opts.weight = w.max(0.0);
        }
        out.push(SourceSpec {
            location,
            format: Some(format),
            opts,
        });
    }
    Ok(out)
}

/// Fetches an `http(s)://` source's bytes with a blocking client (following
/// `Link: rel="next"` for instance APIs).
fn fetch(location: &str) -> anyhow::Result<Vec<u8>> {
    let (url, token) = match location.split_once("#token=") {
        Some((u, t)) => (u.to_string(), Some(t.to_string())),
        None => (location.to_string(), None),
    };
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(30))
        .build();
    let mut next = Some(url.clone());
    let mut items: Vec<serde_json::Value> = Vec::new();
    let is_api = url.contains("/api/v1/");
    while let Some(u) = next.take() {
        let mut req = agent.get(&u).set("User-Agent", "Guildhall-blocklist");
        if let Some(t) = &token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let resp = req.call().with_context(|| format!("fetching {u}"))?;
        let link = resp.header("Link").map(str::to_string);
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader().take_limit(URL_MAXSIZE), &mut body)
            .with_context(|| format!("reading {u}"))?;
        if !is_api {
            return Ok(body);
        }
        let page: Vec<serde_json::Value> =
            serde_json::from_slice(&body).with_context(|| format!("{u}: not a JSON array"))?;
        items.extend(page);
        next = link.and_then(|l| {
            l.split(',').find_map(|part| {
                let (target, params) = part.split_once(';')?;
                params.contains("rel=\"next\"").then(|| {
                    target
                        .trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                })
            })
        });
    }
    Ok(serde_json::to_vec(&items)?)
}

trait TakeLimit: std::io::Read + Sized {
    fn take_limit(self, n: u64) -> std::io::Take<Self> {
        self.take(n)
    }
}
impl<R: std::io::Read> TakeLimit for R {}

/// Reads a local file into `buf` (reused across files, so that its pages are not faulted in
/// again for every list).
fn read_file_into(path: &str, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    buf.clear();
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_to_end(&mut f, buf))
        .with_context(|| format!("reading {path}"))?;
    Ok(())
}

/// Loads one source; `buf` is scratch space for local files.
fn load(spec: &SourceSpec, buf: &mut Vec<u8>) -> anyhow::Result<Compact> {
    let loc = spec.location.as_str();
    let fetched;
    let bytes: &[u8] = if let Some(p) = loc.strip_prefix("file://") {
        read_file_into(p, buf)?;
        buf
    } else if !is_remote(loc) {
        read_file_into(loc, buf)?;
        buf
    } else {
        fetched = fetch(loc)?;
        &fetched
    };
    let origin = loc.split_once("#token=").map_or(loc, |(u, _)| u);
    Ok(read_compact(bytes, origin, spec.format))
}

fn report_problems(l: &Compact, err: &mut dyn Write) -> std::io::Result<()> {
    let shown: Vec<_> = l
        .problems
        .iter()
        .filter(|p| p.level >= Level::Warning)
        .collect();
    for p in shown.iter().take(20) {
        writeln!(err, "{p}")?;
    }
    if shown.len() > 20 {
        writeln!(
            err,
            "{}: … and {} more problems",
            l.origin,
            shown.len() - 20
        )?;
    }
    Ok(())
}

/// How many sources are loaded at once when some are fetched over HTTP (they mostly wait on
/// the network); local files are read by one thread per core.
const FETCH_THREADS: usize = 8;

/// Whether a source location is fetched over HTTP.
fn is_remote(location: &str) -> bool {
    location.starts_with("http://") || location.starts_with("https://")
}

/// Loads sources on worker threads (reading ahead) and feeds them to `f` in source order.
fn load_in_order(
    specs: &[SourceSpec],
    mut f: impl FnMut(&SourceSpec, Compact) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8));
    let threads = if specs.iter().any(|s| is_remote(&s.location)) {
        FETCH_THREADS.max(cores)
    } else {
        cores
    }
    .min(specs.len().max(1));
    std::thread::scope(|s| {
        let mut rxs = Vec::with_capacity(threads);
        for k in 0..threads {
            let (tx, rx) = std::sync::mpsc::sync_channel::<anyhow::Result<Compact>>(2);
            rxs.push(rx);
            s.spawn(move || {
                let mut buf = Vec::new();
                for spec in specs.iter().skip(k).step_by(threads) {
                    if tx.send(load(spec, &mut buf)).is_err() {
                        break;
                    }
                }
            });
        }
        for (i, spec) in specs.iter().enumerate() {
            let list = rxs[i % threads]
                .recv()
                .map_err(|_| anyhow::anyhow!("{}: reader thread stopped", spec.location))??;
            f(spec, list)?;
        }
        Ok(())
    })
}

fn merge_cmd(a: &MergeArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if a.version {
        writeln!(
            out,
            "guildhall blocklist {} (FediBlockHole 0.4.6 compatible)",
            env!("CARGO_PKG_VERSION")
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let conf: toml::Table = match &a.config {
        Some(p) => {
            let s =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&s).with_context(|| format!("parsing {}", p.display()))?
        }
        None if Path::new(DEFAULT_CONFIG).exists() && a.sources.is_empty() => {
            let s = std::fs::read_to_string(DEFAULT_CONFIG)?;
            toml::from_str(&s).with_context(|| format!("parsing {DEFAULT_CONFIG}"))?
        }
        None => toml::Table::new(),
    };
    let get_str = |k: &str| {
        conf.get(k)
            .and_then(toml::Value::as_str)
            .map(str::to_string)
    };
    let get_bool = |k: &str| conf.get(k).and_then(toml::Value::as_bool).unwrap_or(false);

    let mut import = ImportFields::default();
    let import_names = if a.import_fields.is_empty() {
        toml_str_list(conf.get("import_fields"), "import_fields")?
    } else {
        a.import_fields.clone()
    };
    for n in &import_names {
        import.add(n)?;
    }
    let export = if a.export_fields.is_empty() {
        toml_str_list(conf.get("export_fields"), "export_fields")?
    } else {
        a.export_fields.clone()
    };
    write::check_export_fields(&export)?;
    let plan: MergePlan = a
        .mergeplan
        .clone()
        .or_else(|| get_str("mergeplan"))
        .unwrap_or_else(|| "max".into())
        .parse()?;
    let threshold = match a.merge_threshold.filter(|t| *t != 0.0) {
        Some(t) => t,
        None => conf
            .get("merge_threshold")
            .and_then(|v| v.as_float().or(v.as_integer().map(|x| x as f64)))
            .unwrap_or(0.0),
    };
    let threshold_type: ThresholdType = a
        .merge_threshold_type
        .clone()
        .or_else(|| get_str("merge_threshold_type"))
        .unwrap_or_else(|| "count".into())
        .parse()?;
    let outfile = a
        .outfile
        .clone()
        .or_else(|| get_str("blocklist_savefile").map(PathBuf::from));
    let auditfile = a
        .block_audit_file
        .clone()
        .or_else(|| get_str("blocklist_auditfile").map(PathBuf::from));
    let save_intermediate = a.save_intermediate || get_bool("save_intermediate");
    let savedir = a
        .savedir
        .clone()
        .or_else(|| get_str("savedir").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/tmp"));

    let mut specs = Vec::new();
    if !(a.no_fetch_url || get_bool("no_fetch_url")) {
        specs.extend(url_sources(&conf, "blocklist_url_sources", import)?);
    }
    if !(a.no_fetch_instance || get_bool("no_fetch_instance")) {
        specs.extend(instance_sources(&conf)?);
    }
    for s in &a.sources {
        specs.push(SourceSpec {
            location: s.clone(),
            format: None,
            opts: SourceOptions::new(s.clone()),
        });
    }
    let allow_specs = url_sources(&conf, "allowlist_url_sources", ImportFields::all())?;
    if specs.is_empty() {
        bail!("no blocklist sources: give -c CONFIG with blocklist_url_sources, or source files");
    }
    let opts = MergeOptions {
        plan,
        threshold,
        threshold_type,
        import,
        subdomains: a.subdomains,
        no_audit: auditfile.is_none() && a.audit.is_none(),
    };
    let mut merger = Merger::new(opts);
    merger.add_compact_parallel(|feed| {
        load_in_order(&specs, |spec, list| {
            report_problems(&list, err)?;
            if save_intermediate {
                let name = format!("{}.csv", list.origin.replace('/', "-"));
                let mut f = std::io::BufWriter::new(std::fs::File::create(savedir.join(name))?);
                write::write_fbh_csv(&mut f, &list.entries(), &export)?;
            }
            feed.add_compact(spec.opts.clone(), list);
            Ok(())
        })
    })?;
    let mut allow_lists = Vec::new();
    load_in_order(&allow_specs, |_, list| {
        report_problems(&list, err)?;
        allow_lists.push(list.into_blocklist());
        Ok(())
    })?;
    let allow: hash::Set<String> = allow_set(allow_lists.iter(), &a.allow);
    let result = merger.finish(&allow);
    if let Some(p) = &auditfile {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        );
        write::write_fbh_audit(&mut f, &result.audit)?;
        f.flush()?;
    }
    if let Some(p) = &a.audit {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        );
        write::write_audit(&mut f, &result)?;
        f.flush()?;
    }
    let write_out = |w: &mut dyn Write| -> anyhow::Result<()> {
        match a.output_format.as_str() {
            "fediblockhole" | "fbh" | "csv" => write::write_fbh_csv(w, &result.entries, &export)?,
            "mastodon" | "mastodon_csv" => write::write_mastodon_csv(w, &result.entries)?,
            "json" => write::write_json(w, &result.entries)?,
            other => bail!("unknown output format {other:?} (fediblockhole, mastodon, json)"),
        }
        Ok(())
    };
    match &outfile {
        Some(p) => {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
            );
            write_out(&mut f)?;
            f.flush()?;
        }
        None => write_out(out)?,
    }
    writeln!(
        err,
        "merged {} lists: {} domains seen, {} blocks out; {} obfuscated rows skipped, {} matched by digest",
        result.sources.len(),
        result.domains_seen,
        result.entries.len(),
        result.obfuscated_skipped,
        result.digests_resolved
    )?;
    // Freeing hundreds of thousands of records one by one just before exit costs ~10 % of a
    // large merge; the process is about to end.
    std::mem::forget(result);
    let dest = conf
        .get("blocklist_instance_destinations")
        .and_then(toml::Value::as_array)
        .is_some_and(|d| !d.is_empty());
    if dest && !(a.no_push_instance || get_bool("no_push_instance")) {
        writeln!(
            err,
            "note: blocklist_instance_destinations are not pushed by this offline tool; \
             use `guildhall blocklist diff` to preview and the Guildhall server to push"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn diff_cmd(a: &DiffArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let read = |p: &Path| -> anyhow::Result<Blocklist> {
        let l = crate::read::read_path(p, None)?;
        if l.entries.is_empty() && l.error_count() > 0 {
            bail!("{}: {}", p.display(), l.problems[0]);
        }
        Ok(l)
    };
    let desired = read(&a.desired)?;
    let current = read(&a.current)?;
    let own: Ownership = match &a.state {
        Some(p) => serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("parsing {}", p.display()))?,
        None => Ownership::default(),
    };
    let d = diff(
        &desired.entries,
        &current.entries,
        &own,
        DiffOptions {
            keep_record: a.keep_record,
        },
    );
    let flags = |e: &crate::types::BlockEntry| {
        format!(
            "{}{}{}{}",
            e.severity,
            if e.reject_media { " reject_media" } else { "" },
            if e.reject_reports {
                " reject_reports"
            } else {
                ""
            },
            if e.obfuscate { " obfuscate" } else { "" }
        )
    };
    for e in &d.creates {
        writeln!(out, "create {} {}", e.domain, flags(e))?;
    }
    for (from, to) in &d.updates {
        writeln!(out, "update {} {} -> {}", to.domain, flags(from), flags(to))?;
    }
    for e in &d.removals {
        writeln!(out, "remove {}", e.domain)?;
    }
    for (dom, why) in &d.skipped {
        writeln!(out, "skip {dom}: {why}")?;
    }
    writeln!(
        out,
        "{} creates, {} updates, {} removals, {} skipped",
        d.creates.len(),
        d.updates.len(),
        d.removals.len(),
        d.skipped.len()
    )?;
    if let Some(p) = &a.state_out {
        std::fs::write(p, serde_json::to_vec_pretty(&d.ownership)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct T {
        #[command(subcommand)]
        c: Command,
    }

    fn run_args(args: &[&str]) -> (ExitCode, String, String) {
        let t = T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).unwrap();
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let code = run_to(t.c, &mut o, &mut e).unwrap();
        (
            code,
            String::from_utf8(o).unwrap(),
            String::from_utf8(e).unwrap(),
        )
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gh-blocklist-cli-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }

    #[test]
    fn merge_accepts_fediblockhole_config_and_flags() {
        let a = tmp("a.csv");
        let b = tmp("b.csv");
        let allow = tmp("allow.csv");
        std::fs::write(
            &a,
            "domain,severity,public_comment\nx.example,suspend,spam\ny.example,silence,\n",
        )
        .unwrap();
        std::fs::write(&b, "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\nx.example,silence,true,false,bots,false\nz.example,suspend,false,false,,false\n").unwrap();
        std::fs::write(&allow, "domain,\nz.example,\n").unwrap();
        let conf = tmp("conf.toml");
        let outp = tmp("out.csv");
        let auditp = tmp("audit.csv");
        std::fs::write(
            &conf,
            format!(
                "blocklist_url_sources = [{{ url = 'file://{}', format = 'csv' }}, {{ url = '{}', format = 'mastodon_csv', max_severity = 'silence' }}]\n\
                 allowlist_url_sources = [{{ url = 'file://{}', format = 'csv' }}]\n\
                 import_fields = ['public_comment', 'reject_media']\nexport_fields = ['public_comment', 'reject_media']\n\
                 mergeplan = 'min'\nblocklist_instance_destinations = []\n",
                a.display(), b.display(), allow.display()
            ),
        )
        .unwrap();
        let (code, _, err) = run_args(&[
            "merge",
            "-c",
            conf.to_str().unwrap(),
            "-o",
            outp.to_str().unwrap(),
            "-b",
            auditp.to_str().unwrap(),
        ]);
        assert_eq!(code, ExitCode::SUCCESS);
        assert!(err.contains("merged 2 lists"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&outp).unwrap(),
            "domain,severity,public_comment,reject_media\r\nx.example,silence,\"spam, bots\",False\r\ny.example,silence,,False\r\n"
        );
        assert_eq!(
            std::fs::read_to_string(&auditp).unwrap(),
            "domain,count,percent\r\nx.example,2,100.0\r\ny.example,1,50.0\r\nz.example,1,50.0\r\n"
        );
        // Flags override the config: max plan (b is capped at silence), pct threshold, -E.
        let (_, out, _) = run_args(&[
            "merge",
            "-c",
            conf.to_str().unwrap(),
            "-m",
            "max",
            "--merge-threshold",
            "60",
            "--merge-threshold-type",
            "pct",
            "-E",
            "reject_media",
        ]);
        // -o in the config is absent, so the list goes to stdout.
        assert_eq!(
            out,
            "domain,severity,reject_media\r\nx.example,suspend,True\r\n"
        );
        let (_, out, _) = run_args(&[
            "merge",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "-A",
            "Z.Example",
            "--output-format",
            "mastodon",
        ]);
        assert_eq!(out, "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\nx.example,suspend,false,false,,false\ny.example,silence,false,false,,false\n");
    }

    #[test]
    fn command_line_is_well_formed() {
        use clap::CommandFactory;
        T::command().debug_assert();
    }

    #[test]
    fn bad_options_are_errors() {
        let t = T::try_parse_from(["t", "merge", "-m", "median", "x.csv"]).unwrap();
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let r = run_to(t.c, &mut o, &mut e);
        assert!(r.unwrap_err().to_string().contains("mergeplan"));
        let t = T::try_parse_from(["t", "merge", "-E", "colour", "x.csv"]).unwrap();
        assert!(run_to(t.c, &mut o, &mut e).is_err());
    }

    #[test]
    fn check_lists_problems_by_line() {
        let f = tmp("check.csv");
        std::fs::write(&f, "domain,severity\r\ngood.example,suspend\r\nbad example,suspend\r\nok.example,sometimes\r\n").unwrap();
        let (code, out, _) = run_args(&["check", f.to_str().unwrap()]);
        assert_eq!(code, ExitCode::FAILURE);
        assert!(out.contains("format csv; 1 blocks"), "{out}");
        assert!(out.contains("check.csv:3: error"), "{out}");
        assert!(out.contains("check.csv:4: error"), "{out}");
        assert!(out.contains("2 errors"), "{out}");
    }

    #[test]
    fn diff_prints_plan_and_state() {
        let desired = tmp("desired.csv");
        let current = tmp("current.json");
        let state = tmp("state.json");
        let state_out = tmp("state-out.json");
        std::fs::write(
            &desired,
            "domain,severity\nnew.example,suspend\nmine.example,suspend\nadmins.example,suspend\n",
        )
        .unwrap();
        std::fs::write(&current, r#"[{"id":"1","domain":"mine.example","severity":"silence"},{"id":"2","domain":"admins.example","severity":"silence"},{"id":"3","domain":"old.example","severity":"suspend"}]"#).unwrap();
        std::fs::write(&state, r#"{"managed":{"mine.example":{"severity":"silence"},"old.example":{"severity":"suspend"}},"locked":[]}"#).unwrap();
        let (_, out, _) = run_args(&[
            "diff",
            desired.to_str().unwrap(),
            current.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--state-out",
            state_out.to_str().unwrap(),
        ]);
        assert_eq!(
            out,
            "create new.example suspend\nupdate mine.example silence -> suspend\nremove old.example\nskip admins.example: admin-made block, not touched\n1 creates, 1 updates, 1 removals, 1 skipped\n"
        );
        let o: Ownership = serde_json::from_slice(&std::fs::read(&state_out).unwrap()).unwrap();
        assert_eq!(
            o.managed.keys().collect::<Vec<_>>(),
            ["mine.example", "new.example"]
        );
    }

    /// A tiny HTTP server for URL sources: each connection on its own thread, answered after
    /// `delay(path)`; records `(path, Authorization header)` of every request.
    struct Server {
        base: String,
        seen: Seen,
    }

    /// `(path, Authorization header)` of each request, in order.
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

    fn serve(delay: fn(&str) -> std::time::Duration) -> Server {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen: Seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (log, me) = (seen.clone(), base.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (log, me) = (log.clone(), me.clone());
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    let path = line.split(' ').nth(1).unwrap_or("").to_string();
                    let mut auth = None;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.eq_ignore_ascii_case("authorization") {
                                auth = Some(v.trim().to_string());
                            }
                        }
                    }
                    log.lock().unwrap().push((path.clone(), auth));
                    std::thread::sleep(delay(&path));
                    let blocks = "/api/v1/instance/domain_blocks";
                    let (status, link, body) = if path.ends_with(".csv") {
                        let name = path.trim_start_matches('/').trim_end_matches(".csv");
                        let body = format!(
                            "domain,severity,public_comment\n{name}.example,suspend,\nshared.example,silence,{name}\n"
                        );
                        ("200 OK", String::new(), body)
                    } else if path == blocks {
                        let page = r#"[{"domain":"api1.example","digest":"d","severity":"suspend","comment":"spam"}]"#;
                        let link = format!("Link: <{me}{blocks}?page=2>; rel=\"next\"\r\n");
                        ("200 OK", link, page.to_string())
                    } else if path == format!("{blocks}?page=2") {
                        let page = r#"[{"domain":"api2.example","digest":"d","severity":"silence","comment":""}]"#;
                        ("200 OK", String::new(), page.to_string())
                    } else {
                        ("404 Not Found", String::new(), "no".to_string())
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\n{link}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = std::io::Write::write_all(&mut conn, resp.as_bytes());
                });
            }
        });
        Server { base, seen }
    }

    #[test]
    fn merge_fetches_url_and_instance_sources() {
        let srv = serve(|_| std::time::Duration::ZERO);
        let host = srv.base.trim_start_matches("http://");
        let conf = tmp("url-conf.toml");
        std::fs::write(
            &conf,
            format!(
                "blocklist_url_sources = [{{ url = '{}/one.csv', format = 'csv' }}]\n\
                 blocklist_instance_sources = [{{ domain = '{host}', scheme = 'http', token = 'sekrit' }}]\n\
                 import_fields = ['public_comment']\nexport_fields = ['public_comment']\n",
                srv.base
            ),
        )
        .unwrap();
        let outp = tmp("url-out.csv");
        let (code, _, err) = run_args(&[
            "merge",
            "-c",
            conf.to_str().unwrap(),
            "-o",
            outp.to_str().unwrap(),
        ]);
        assert_eq!(code, ExitCode::SUCCESS, "{err}");
        assert!(err.contains("merged 2 lists"), "{err}");
        assert!(!err.contains("sekrit"), "the token is not shown: {err}");
        assert_eq!(
            std::fs::read_to_string(&outp).unwrap(),
            "domain,severity,public_comment\r\n\
             api1.example,suspend,spam\r\n\
             api2.example,silence,\r\n\
             one.example,suspend,\r\n\
             shared.example,silence,one\r\n"
        );
        let seen = srv.seen.lock().unwrap().clone();
        let auth_of = |p: &str| {
            seen.iter()
                .find(|(q, _)| q == p)
                .unwrap_or_else(|| panic!("{p} not asked: {seen:?}"))
                .1
                .clone()
        };
        assert_eq!(auth_of("/one.csv"), None);
        let bearer = Some("Bearer sekrit".to_string());
        assert_eq!(auth_of("/api/v1/instance/domain_blocks"), bearer);
        assert_eq!(
            auth_of("/api/v1/instance/domain_blocks?page=2"),
            bearer,
            "next page"
        );

        // --no-fetch-url and --no-fetch-instance leave them out.
        let (code, _, err) = run_args(&[
            "merge",
            "-c",
            conf.to_str().unwrap(),
            "-o",
            outp.to_str().unwrap(),
            "--no-fetch-instance",
        ]);
        assert_eq!(code, ExitCode::SUCCESS, "{err}");
        assert!(err.contains("merged 1 lists"), "{err}");
    }

    #[test]
    fn a_url_source_that_fails_names_its_url() {
        let srv = serve(|_| std::time::Duration::ZERO);
        let url = format!("{}/missing", srv.base);
        let t = T::try_parse_from(["t", "merge", &format!("{url}#token=sekrit")]).unwrap();
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let err = run_to(t.c, &mut o, &mut e).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&url), "{msg}");
        assert!(msg.contains("404"), "{msg}");
        assert!(!msg.contains("sekrit"), "the token is not shown: {msg}");
    }

    #[test]
    fn url_sources_are_fetched_several_at_a_time_in_order() {
        // Six sources, `/lN.csv` answered after (6 - N) × 150 ms: one after another they would
        // take 3.15 s, two at a time 1.8 s; fetched together, about 0.9 s, the first last.
        let srv = serve(|path| {
            let n: u64 = path
                .trim_start_matches("/l")
                .trim_end_matches(".csv")
                .parse()
                .unwrap_or(0);
            std::time::Duration::from_millis(150 * (6 - n.min(6)))
        });
        let names: Vec<String> = (0..6).map(|i| format!("{}/l{i}.csv", srv.base)).collect();
        let mut args = vec!["merge", "-I", "public_comment", "-E", "public_comment"];
        args.extend(names.iter().map(String::as_str));
        let outp = tmp("par-out.csv");
        args.extend(["-o", outp.to_str().unwrap()]);
        let started = std::time::Instant::now();
        let (code, _, err) = run_args(&args);
        let took = started.elapsed();
        assert_eq!(code, ExitCode::SUCCESS, "{err}");
        assert!(err.contains("merged 6 lists"), "{err}");
        assert!(took < std::time::Duration::from_millis(1500), "{took:?}");
        // Merged in source order although the first arrived last: the comments of
        // shared.example follow the lists' order.
        let out = std::fs::read_to_string(&outp).unwrap();
        assert!(
            out.contains("shared.example,silence,\"l0, l1, l2, l3, l4, l5\""),
            "{out}"
        );
    }
}
