//! Prometheus metrics: request counts and latencies by route and status (recorded by
//! [`track`]), and job counts by state (read from the database when scraped).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::AppState;

/// Upper bounds (seconds) of the latency histogram's buckets.
pub const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    buckets: Vec<u64>,
}

/// Request counters and latency histograms, keyed by (method, route, status).
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Metrics {
    /// Records one request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut map = match self.series.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let s = map
            .entry((method.to_owned(), route.to_owned(), status))
            .or_insert_with(|| Series {
                buckets: vec![0; BUCKETS.len()],
                ..Series::default()
            });
        s.count += 1;
        s.sum += seconds;
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    /// The request metrics in the Prometheus text format.
    pub fn render_requests(&self) -> String {
        let map = match self.series.lock() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let mut out = String::new();
        out.push_str(
            "# HELP guildhall_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE guildhall_http_requests_total counter\n");
        for ((m, r, st), s) in &map {
            let _ = writeln!(
                out,
                "guildhall_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{st}\"}} {}",
                escape(r),
                s.count
            );
        }
        out.push_str("# HELP guildhall_http_request_duration_seconds HTTP request latency by method, route and status.\n");
        out.push_str("# TYPE guildhall_http_request_duration_seconds histogram\n");
        for ((m, r, st), s) in &map {
            let labels = format!("method=\"{m}\",route=\"{}\",status=\"{st}\"", escape(r));
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "guildhall_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "guildhall_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "guildhall_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "guildhall_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware: times every request and records it under its route pattern (not the concrete
/// path, so ids do not multiply the series); unmatched paths count as `unmatched`.
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    state.metrics.observe(
        &method,
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// `GET /metrics`.
pub(crate) async fn render(State(state): State<AppState>) -> Result<Response, AppError> {
    let mut out = state.metrics.render_requests();
    let counts = crate::store::job_counts(&state).await?;
    out.push_str("# HELP guildhall_jobs Jobs by state.\n");
    out.push_str("# TYPE guildhall_jobs gauge\n");
    for (st, n) in counts {
        let _ = writeln!(out, "guildhall_jobs{{state=\"{}\"}} {n}", st.as_str());
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_into_buckets() {
        let m = Metrics::default();
        m.observe("GET", "/orgs/{org}", 200, 0.003);
        m.observe("GET", "/orgs/{org}", 200, 0.2);
        let text = m.render_requests();
        assert!(text.contains(
            "guildhall_http_requests_total{method=\"GET\",route=\"/orgs/{org}\",status=\"200\"} 2"
        ));
        assert!(text.contains("route=\"/orgs/{org}\",status=\"200\",le=\"0.005\"} 1"));
        assert!(text.contains("route=\"/orgs/{org}\",status=\"200\",le=\"0.25\"} 2"));
    }
}
