//! Ingestion jobs: `moderation.sync` pulls an instance's open reports (following `Link`
//! pagination; incremental after the first run), `mastodon.webhook` stores the report of a
//! recorded `report.created`/`report.updated` delivery, and `moderation.media` copies the
//! reported media's bytes.

use std::collections::BTreeSet;
use std::time::Duration;

use guildhall_core::Timestamp;
use guildhall_db::instances::token_secret_name;
use guildhall_db::jobs::{Job, NewJob};
use guildhall_db::{on_pool, Db};
use guildhall_mastodon::net::{self, Outbound};
use guildhall_mastodon::{Client, Secret};
use serde::Serialize;
use serde_json::Value;

use crate::error::{ModError, Result};
use crate::ingest::{
    instance_ctx, parse_report, record_error, stored_versions, unchanged, upsert_report,
    InstanceCtx,
};
use crate::links::{link_of, store_rules, sync_job};
use crate::model::InstanceRule;
use crate::Services;

/// The job kind that copies a report's media bytes.
pub const MEDIA_JOB_KIND: &str = "moderation.media";
/// The largest media item whose bytes are copied (larger ones keep only their URLs).
pub const MEDIA_CAP_BYTES: usize = 8 * 1024 * 1024;
/// A full pass over the open reports runs at least this often (incremental runs in between).
pub const FULL_SYNC_EVERY: Duration = Duration::from_secs(3600);

/// A client for an instance with its unsealed token.
pub(crate) async fn client_for(services: &Services, instance_id: i64) -> Result<Client> {
    let inst = services
        .db
        .instance(instance_id)
        .await?
        .ok_or(ModError::NotFound("instance"))?;
    let token = services
        .db
        .get_secret(&services.keyring, &token_secret_name(instance_id))
        .await?
        .ok_or(ModError::NotConnected(instance_id))?;
    let token = token
        .expose_str()
        .ok_or(ModError::NotConnected(instance_id))?
        .to_owned();
    Ok(Client::new(
        &inst.base_url,
        Some(Secret::new(token)),
        services.client.clone(),
    )?)
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Whether it was a full pass.
    pub full: bool,
    /// Pages fetched.
    pub pages: usize,
    /// Reports read from the list.
    pub seen: usize,
    /// Reports inserted or changed.
    pub stored: usize,
    /// Reports that could not be read (recorded as ingestion errors).
    pub errors: usize,
    /// Stored open reports no longer listed, fetched one by one (resolved or deleted there).
    pub refetched: usize,
    /// Rules stored.
    pub rules: usize,
}

pub(crate) fn media_job(report_ids: &[i64]) -> NewJob {
    let first = report_ids.first().copied().unwrap_or_default();
    let last = report_ids.last().copied().unwrap_or_default();
    NewJob::new(
        MEDIA_JOB_KIND,
        serde_json::json!({ "report_ids": report_ids }),
    )
    .dedup(format!("mod-media:{first}:{last}:{}", report_ids.len()))
    .max_attempts(5)
}

/// Stores a batch of parsed reports in one transaction, refreshes each touched case once, and
/// enqueues one media job for the reports with new media.
async fn store_batch(db: &Db, ctx: &InstanceCtx, batch: &[crate::ingest::Parsed]) -> Result<usize> {
    if batch.is_empty() {
        return Ok(0);
    }
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    let mut n = 0;
    let mut touched = BTreeSet::new();
    let mut media = Vec::new();
    for p in batch {
        let s = upsert_report(&mut tx, ctx, p, now).await?;
        if s.changed {
            n += 1;
            touched.insert(s.case_id);
            touched.extend(s.old_case);
        }
        if s.new_media {
            media.push(s.report_id);
        }
    }
    for case_id in touched {
        crate::ingest::refresh_case(&mut tx, case_id, &ctx.settings, now).await?;
    }
    if !media.is_empty() {
        Db::enqueue_in(&mut tx, &media_job(&media)).await?;
    }
    tx.commit().await?;
    Ok(n)
}

/// Pulls the open reports of one instance now: the instance's rules, then the unresolved
/// reports newest first, following `Link: rel="next"`. After the first run a pass stops at the
/// first page made only of known, unchanged reports older than the newest seen before (Mastodon
/// has no `updated_since`), and a full pass runs every [`FULL_SYNC_EVERY`]. Stored open reports
/// that are no longer listed (within the pages read) are fetched one by one, so resolutions on
/// the instance show up. Reports that cannot be read are recorded as ingestion errors; the
/// others are kept.
pub async fn sync_instance(services: &Services, instance_id: i64) -> Result<SyncReport> {
    let db = &services.db;
    let ctx = instance_ctx(db, instance_id)
        .await?
        .ok_or(ModError::NotFound("instance"))?;
    let client = client_for(services, instance_id).await?;
    let mut report = SyncReport::default();
    // The rules (a decision cites them). A server that refuses them keeps the stored ones;
    // the refusal is recorded and the reports are still pulled.
    match client.rules().await {
        Ok(rules) => {
            let rules: Vec<InstanceRule> = rules
                .into_iter()
                .map(|r| InstanceRule {
                    id: r.id,
                    text: r.text,
                    hint: r.hint,
                })
                .collect();
            store_rules(db, instance_id, &rules).await?;
            report.rules = rules.len();
        }
        Err(e) if !e.is_transient() => {
            record_error(
                db,
                instance_id,
                "sync",
                None,
                &format!("the instance's rules: {e}"),
            )
            .await?;
        }
        Err(e) => return Err(e.into()),
    }

    let state: Option<(i64, Option<i64>)> = on_pool!(db, p => sqlx::query_as(
        "SELECT high_water, last_full_at FROM mod_sync_state WHERE instance_id = $1")
        .bind(instance_id).fetch_optional(p).await)?;
    let now = Timestamp::now();
    let (high_water, last_full) = state.unwrap_or((0, None));
    let full = last_full.is_none_or(|t| t < now.minus(FULL_SYNC_EVERY).0);
    report.full = full;

    let mut url = client
        .base_url()
        .join("/api/v1/admin/reports?limit=200")
        .map_err(|e| ModError::invalid("base_url", e.to_string()))?;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut max_num = high_water;
    let mut min_num = i64::MAX;
    let mut stopped_early = false;
    loop {
        let page = client.follow::<Value>(&url).await?;
        report.pages += 1;
        let mut batch = Vec::new();
        let mut all_known = !page.items.is_empty();
        let parsed: Vec<_> = page
            .items
            .iter()
            .map(|item| parse_report(item, now))
            .collect();
        let ids: Vec<String> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok().map(|p| p.remote_id.clone()))
            .collect();
        let versions = stored_versions(db, instance_id, &ids).await?;
        for item in parsed {
            report.seen += 1;
            match item {
                Ok(p) => {
                    seen.insert(p.remote_id.clone());
                    max_num = max_num.max(p.remote_num);
                    min_num = min_num.min(p.remote_num);
                    if unchanged(versions.get(&p.remote_id), &p) {
                        if p.remote_num > high_water {
                            all_known = false;
                        }
                    } else {
                        all_known = false;
                        batch.push(p);
                    }
                }
                Err((id, msg)) => {
                    report.errors += 1;
                    if let Some(id) = &id {
                        seen.insert(id.clone());
                    }
                    record_error(db, instance_id, "sync", id.as_deref(), &msg).await?;
                }
            }
        }
        report.stored += store_batch(db, &ctx, &batch).await?;
        if !full && all_known {
            // Older pages hold only reports we already have; resolutions among them show up
            // in the next full pass (or by webhook).
            stopped_early = page.next.is_some();
            break;
        }
        match page.next {
            Some(next) if report.pages < services.client.max_pages => url = next,
            _ => break,
        }
    }
    // Open reports we hold that the instance no longer lists as open.
    let floor = if stopped_early { min_num } else { i64::MIN };
    let open: Vec<(String,)> = on_pool!(db, p => sqlx::query_as(
        "SELECT remote_id FROM mod_reports WHERE instance_id = $1 AND action_taken = FALSE AND remote_num >= $2")
        .bind(instance_id).bind(floor).fetch_all(p).await)?;
    for (rid,) in open {
        if seen.contains(&rid) {
            continue;
        }
        report.refetched += 1;
        match client.report(&rid).await {
            Ok(r) => {
                let v = serde_json::to_value(&r).unwrap_or(Value::Null);
                match parse_report(&v, now) {
                    Ok(p) => {
                        report.stored += store_batch(db, &ctx, &[p]).await?;
                    }
                    Err((id, msg)) => {
                        record_error(db, instance_id, "sync", id.as_deref(), &msg).await?;
                    }
                }
            }
            Err(guildhall_mastodon::Error::NotFound { .. }) => {
                record_error(
                    db,
                    instance_id,
                    "sync",
                    Some(&rid),
                    &format!("report {rid} no longer exists on the instance; counted as resolved"),
                )
                .await?;
                mark_gone(db, &ctx, &rid).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let now2 = Timestamp::now();
    on_pool!(db, p => sqlx::query(
        "INSERT INTO mod_sync_state (instance_id, high_water, last_sync_at, last_full_at, last_error, runs) \
         VALUES ($1, $2, $3, $4, NULL, 1) ON CONFLICT (instance_id) DO UPDATE SET \
         high_water = excluded.high_water, last_sync_at = excluded.last_sync_at, \
         last_full_at = COALESCE(excluded.last_full_at, mod_sync_state.last_full_at), \
         last_error = NULL, runs = mod_sync_state.runs + 1")
        .bind(instance_id).bind(max_num).bind(now2.0).bind(full.then_some(now2.0))
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(report)
}

/// A report deleted on the instance: counted as resolved there.
async fn mark_gone(db: &Db, ctx: &InstanceCtx, remote_id: &str) -> Result<()> {
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    let case: Option<i64> = guildhall_db::on_tx!(&mut tx, c => sqlx::query_scalar(
        "UPDATE mod_reports SET action_taken = TRUE, last_seen_at = $1 WHERE instance_id = $2 AND remote_id = $3 RETURNING case_id")
        .bind(now.0).bind(ctx.id).bind(remote_id).fetch_optional(c).await)?;
    if let Some(case) = case {
        crate::ingest::refresh_case(&mut tx, case, &ctx.settings, now).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn record_sync_error(db: &Db, instance_id: i64, message: &str) -> Result<()> {
    on_pool!(db, p => sqlx::query(
        "INSERT INTO mod_sync_state (instance_id, high_water, last_error, runs) VALUES ($1, 0, $2, 1) \
         ON CONFLICT (instance_id) DO UPDATE SET last_error = excluded.last_error, runs = mod_sync_state.runs + 1")
        .bind(instance_id).bind(message).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// The `moderation.sync` handler: syncs, sweeps expired claims, and schedules the next run
/// (every `sync_minutes` of the link) in the other dedup slot. Stops when the instance is no
/// longer linked. A failed sync is recorded on the sync state and retried at the next run.
pub(crate) async fn sync_job_handler(services: Services, job: Job) -> Result<()> {
    let instance_id = job
        .payload
        .get("instance_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| ModError::invalid("payload", "moderation.sync job without instance_id"))?;
    let slot = job.payload.get("slot").and_then(Value::as_u64).unwrap_or(0);
    let Some(link) = link_of(&services.db, instance_id).await? else {
        return Ok(());
    };
    if let Err(e) = sync_instance(&services, instance_id).await {
        tracing::warn!(instance = instance_id, error = %e, "moderation sync failed");
        record_sync_error(&services.db, instance_id, &e.to_string()).await?;
    }
    crate::claims::expire_claims(&services.db).await?;
    crate::effect::reconcile_dead_deliveries(&services.db).await?;
    // The settings as they are now: an interval changed while this sync ran applies to the
    // next one.
    let minutes = link_of(&services.db, instance_id)
        .await?
        .map_or(link.settings.sync_minutes, |l| l.settings.sync_minutes);
    let next = Timestamp::now().plus(Duration::from_secs(u64::from(minutes) * 60));
    services
        .db
        .enqueue(&sync_job(
            instance_id,
            if slot == 0 { 1 } else { 0 },
            Some(next),
        ))
        .await?;
    Ok(())
}

/// The `mastodon.webhook` handler: reads the recorded delivery and stores its report. A body
/// that cannot be read is recorded as an ingestion error (the job succeeds: retrying cannot
/// help).
pub(crate) async fn webhook_job_handler(services: Services, job: Job) -> Result<()> {
    let db = &services.db;
    let delivery_id = job
        .payload
        .get("delivery_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| ModError::invalid("payload", "mastodon.webhook job without delivery_id"))?;
    let row: Option<(i64, String, String)> = on_pool!(db, p => sqlx::query_as(
        "SELECT instance_id, event, body FROM webhook_deliveries WHERE id = $1")
        .bind(delivery_id).fetch_optional(p).await)?;
    let Some((instance_id, event, body)) = row else {
        return Ok(());
    };
    if event != "report.created" && event != "report.updated" {
        return Ok(());
    }
    let source = format!("webhook delivery {delivery_id}");
    let envelope: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            record_error(
                db,
                instance_id,
                &source,
                None,
                &format!("{event}: the body is not JSON: {e}"),
            )
            .await?;
            return Ok(());
        }
    };
    let Some(object) = envelope.get("object") else {
        record_error(
            db,
            instance_id,
            &source,
            None,
            &format!("{event}: the body has no `object`"),
        )
        .await?;
        return Ok(());
    };
    let Some(ctx) = instance_ctx(db, instance_id).await? else {
        return Ok(());
    };
    match parse_report(object, Timestamp::now()) {
        Ok(p) => {
            store_batch(db, &ctx, &[p]).await?;
        }
        Err((id, msg)) => {
            record_error(
                db,
                instance_id,
                &source,
                id.as_deref(),
                &format!("{event}: {msg}"),
            )
            .await?;
        }
    }
    Ok(())
}

/// The `moderation.media` handler: copies the bytes of some reports' pending media (at most
/// [`MEDIA_CAP_BYTES`] each) through the outbound guard of `services.client.outbound`. An
/// address the guard refuses (or a URL that is not http(s)) is recorded as failed at once;
/// other failures are retried and the last attempt records them. The reports are kept either way.
pub(crate) async fn media_job_handler(services: Services, job: Job) -> Result<()> {
    let db = &services.db;
    let report_ids: Vec<i64> = job
        .payload
        .get("report_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .ok_or_else(|| ModError::invalid("payload", "moderation.media job without report_ids"))?;
    let mut pending: Vec<(i64, Option<String>, Option<String>)> = Vec::new();
    for report_id in report_ids {
        let rows: Vec<(i64, Option<String>, Option<String>)> = on_pool!(db, p => sqlx::query_as(
            "SELECT m.id, m.url, m.preview_url FROM mod_media m JOIN mod_statuses s ON s.id = m.status_id \
             WHERE s.report_id = $1 AND m.copy_state = 'pending' ORDER BY m.id")
            .bind(report_id).fetch_all(p).await)?;
        pending.extend(rows);
    }
    // Media URLs come from the instance's reports, so they are as untrusted as a URL a user
    // types: they go through the outbound guard the services are configured with.
    let outbound = services.client.outbound;
    let builder = reqwest::Client::builder()
        .timeout(services.client.timeout)
        .connect_timeout(services.client.connect_timeout)
        .user_agent(services.client.user_agent.clone());
    let http = net::apply(builder, outbound)
        .build()
        .map_err(|e| ModError::invalid("http client", e.to_string()))?;
    let last_attempt = job.attempts >= job.max_attempts;
    let mut failed: Option<String> = None;
    for (id, url, preview) in pending {
        let Some(url) = url.or(preview) else {
            set_media(db, id, "failed", Some("the media has no URL"), None, None).await?;
            continue;
        };
        match fetch_capped(&http, outbound, &url).await {
            Ok(Fetched::Bytes(ct, bytes)) => {
                set_media(db, id, "copied", None, ct, Some(bytes)).await?
            }
            Ok(Fetched::TooLarge) => {
                set_media(
                    db,
                    id,
                    "too_large",
                    Some(&format!("larger than {MEDIA_CAP_BYTES} bytes")),
                    None,
                    None,
                )
                .await?
            }
            Err(FetchError::Refused(e)) => {
                // Retrying cannot help: the address is not allowed.
                tracing::warn!(media_id = id, "moderation media not fetched: {e}");
                set_media(
                    db,
                    id,
                    "failed",
                    Some(&format!("not fetched: {e}")),
                    None,
                    None,
                )
                .await?;
            }
            Err(FetchError::Failed(e)) => {
                if last_attempt {
                    set_media(db, id, "failed", Some(&e), None, None).await?;
                } else {
                    failed = Some(e);
                }
            }
        }
    }
    match failed {
        Some(e) => Err(ModError::invalid("media", e)),
        None => Ok(()),
    }
}

enum Fetched {
    Bytes(Option<String>, Vec<u8>),
    TooLarge,
}

/// Why a media item was not copied.
enum FetchError {
    /// The outbound guard refused the address (not retried).
    Refused(String),
    /// Anything else (retried).
    Failed(String),
}

async fn fetch_capped(
    http: &reqwest::Client,
    outbound: Outbound,
    url: &str,
) -> std::result::Result<Fetched, FetchError> {
    let parsed = url::Url::parse(url).map_err(|e| FetchError::Refused(format!("{url}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(FetchError::Refused(format!(
            "{url}: only http(s) media is copied"
        )));
    }
    net::check_url(&parsed, outbound).map_err(|e| FetchError::Refused(format!("{url}: {e}")))?;
    let mut resp = http.get(parsed).send().await.map_err(|e| {
        let msg = format!("GET {url}: {}", net::describe(&e));
        if net::refusal(&e).is_some() {
            FetchError::Refused(msg)
        } else {
            FetchError::Failed(msg)
        }
    })?;
    if !resp.status().is_success() {
        return Err(FetchError::Failed(format!(
            "GET {url}: status {}",
            resp.status()
        )));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MEDIA_CAP_BYTES as u64)
    {
        return Ok(Fetched::TooLarge);
    }
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| FetchError::Failed(format!("GET {url}: {e}")))?
    {
        if out.len() + chunk.len() > MEDIA_CAP_BYTES {
            return Ok(Fetched::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Fetched::Bytes(ct, out))
}

async fn set_media(
    db: &Db,
    id: i64,
    state: &str,
    error: Option<&str>,
    content_type: Option<String>,
    bytes: Option<Vec<u8>>,
) -> Result<()> {
    let size = bytes
        .as_ref()
        .map(|b| i64::try_from(b.len()).unwrap_or(i64::MAX));
    on_pool!(db, p => sqlx::query(
        "UPDATE mod_media SET copy_state = $1, copy_error = $2, content_type = $3, bytes = $4, size = $5 WHERE id = $6")
        .bind(state).bind(error).bind(&content_type).bind(&bytes).bind(size).bind(id)
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}
