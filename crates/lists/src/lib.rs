//! Shared blocklists as a service (issue 6): sources refreshed on a schedule, consensus lists
//! over them, published feeds, and safe pushes to subscribed member instances.

use std::sync::Arc;

use guildhall_db::jobs::Registry;
use guildhall_db::secrets::Keyring;
use guildhall_db::Db;
use guildhall_mastodon::ClientConfig;

/// What the blocklist jobs need: the database, the keyring that unseals instance tokens, and
/// the Mastodon client's settings. The binary builds it once and passes it to [`register_jobs`].
#[derive(Clone)]
pub struct Services {
    /// The database.
    pub db: Db,
    /// Unseals the instances' tokens.
    pub keyring: Arc<Keyring>,
    /// The Mastodon client's timeouts and retries.
    pub client: ClientConfig,
}

/// Registers the blocklist job handlers (source refreshes, list rebuilds, pushes).
pub fn register_jobs(registry: &mut Registry, services: &Services) {
    let _ = (registry, services);
}
