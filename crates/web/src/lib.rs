//! Guildhall's web layer: server-rendered HTML pages (askama templates, checked at compile
//! time; htmx, vendored, where interaction helps), a JSON API under `/api/v1` described by
//! `/api/openapi.json`, sessions in the database, CSRF tokens, and `/healthz`, `/readyz` and
//! Prometheus `/metrics`.
//!
//! The binary uses three things:
//!
//! - [`AppState::new`] with a [`Db`] and a [`WebConfig`];
//! - [`router`] to get the `axum::Router` (for tests, or to mount elsewhere);
//! - [`serve`] to run it on a listener until a shutdown future completes.
//!
//! ```no_run
//! # async fn run(db: guildhall_db::Db) -> std::io::Result<()> {
//! let state = guildhall_web::AppState::new(db, guildhall_web::WebConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // Stops when the future completes (the binary passes its Ctrl-C/SIGTERM handling).
//! guildhall_web::serve(listener, state, std::future::pending()).await
//! # }
//! ```
//!
//! Every route is an entry of [`routes::ROUTES`]; the router is built from that table and every
//! entry goes through the one permission check in [`auth`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use guildhall_db::Db;

pub mod api;
pub mod auth;
pub mod error;
pub mod input;
pub mod instances;
pub mod lists;
pub mod metrics;
pub mod moderation;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod routes;
pub mod store;

pub use error::AppError;

/// The web layer's configuration (built once by the binary from file, environment and flags).
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The public base URL, without a trailing slash (used in invitation links), e.g.
    /// `https://hall.example`.
    pub base_url: String,
    /// The largest request body accepted, in bytes; larger ones get 413.
    pub body_limit: usize,
    /// The largest body accepted by the routes that take an uploaded file (those marked
    /// [`routes::RouteSpec::uploads`]), in bytes; larger ones get 413.
    pub upload_limit: usize,
    /// The largest body accepted by the webhook route (a Mastodon `report.created` delivery
    /// carries the whole report with its statuses), in bytes; larger ones get 413.
    pub webhook_limit: usize,
    /// How long a sign-in lasts.
    pub session_lifetime: Duration,
    /// How long an invitation link stays usable.
    pub invitation_lifetime: Duration,
    /// Whether cookies get the `Secure` attribute (set it when served over HTTPS).
    pub secure_cookies: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            base_url: "http://127.0.0.1:8080".to_owned(),
            body_limit: 64 * 1024,
            upload_limit: 16 * 1024 * 1024,
            webhook_limit: 1024 * 1024,
            session_lifetime: Duration::from_secs(14 * 24 * 3600),
            invitation_lifetime: Duration::from_secs(7 * 24 * 3600),
            secure_cookies: false,
        }
    }
}

/// What every request handler shares: the database, the configuration and the metrics.
/// Cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The configuration.
    pub config: Arc<WebConfig>,
    /// Request metrics (for `/metrics`).
    pub metrics: Arc<metrics::Metrics>,
    /// Connecting member instances: the keyring and the Mastodon client's settings.
    pub instances: Arc<instances::InstanceSettings>,
}

impl AppState {
    /// A state over `db` with `config`.
    pub fn new(db: Db, config: WebConfig) -> AppState {
        let mut config = config;
        while config.base_url.ends_with('/') {
            config.base_url.pop();
        }
        AppState {
            db,
            config: Arc::new(config),
            metrics: Arc::new(metrics::Metrics::default()),
            instances: Arc::new(instances::InstanceSettings::default()),
        }
    }
}

/// The whole web application: every entry of [`routes::ROUTES`] behind its guard, error
/// rendering, metrics, and a `404` for everything else.
pub fn router(state: AppState) -> Router {
    let mut r: Router<AppState> = Router::new();
    for spec in routes::ROUTES.iter() {
        r = r.route(spec.path, routes::method_router(spec, &state));
    }
    r.fallback(|| async { AppError::NotFound })
        .layer(axum::middleware::from_fn(error::render_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` completes, then finishes the requests in
/// flight. The peer address of each connection is recorded (the setup page is served to the
/// local machine only).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
