//! A fake Mastodon for tests: an in-process axum server on `127.0.0.1:0` that behaves as
//! `shared/reference/mastodon-api.md` documents (§12 checklist), so that client code cannot
//! tell it from Mastodon on the paths Guildhall uses.
//!
//! - Tokens map to scopes and an account whose role carries a permission bitmask; umbrella
//!   scopes cover granular ones; `0x1` bypasses permissions; the exact §3.3 error bodies.
//! - Reports, accounts and account actions, domain blocks (with normalisation, digests and
//!   the parent-domain 422), domain allows, the public block list in its three modes,
//!   measures, instance info, rules and NodeInfo.
//! - Id-descending pagination with Mastodon's `Link` headers and limit clamping.
//! - OAuth app registration and the authorization-code flow (auto-approved as a chosen
//!   account), with PKCE, revocation and RFC 8414 metadata (or a pre-4.3 404).
//! - `X-RateLimit-*` on every response, real limits and injectable 429s, outages, failing
//!   requests, delays, canned bad responses.
//! - Signed `report.created` / `report.updated` webhooks to a URL the test gives, with
//!   injectable drops, bad signatures and duplicates.
//! - A GoToSocial mode ([`Flavor::GoToSocial`]) with the appendix's differences.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use guildhall_fake_mastodon::{AccountSeed, FakeMastodon, ReportSeed, MANAGE_REPORTS};
//! let fake = FakeMastodon::builder()
//!     .account(AccountSeed::local(1, "mod").with_role("Moderator", MANAGE_REPORTS))
//!     .account(AccountSeed::remote(2, "spammer", "bad.example"))
//!     .report(ReportSeed::new(10, 1, 2).category("spam"))
//!     .token("tok", &["admin:read:reports"], Some(1))
//!     .start()
//!     .await?;
//! println!("{}", fake.url());
//! # Ok(()) }
//! ```

mod seed;
mod server;
mod state;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

pub use seed::{
    AccountSeed, BlockSeed, Flavor, Injected, MediaSeed, PublicBlocksMode, ReportSeed, StatusSeed,
    TokenSeed, WebhookFault,
};
pub use state::{
    normalize_domain, obfuscate_domain, ActionRecord, BlockWrite, Delivery, RequestRecord,
};

use server::{lock, Shared};
use state::{State, Token};

/// Role flag: bypasses every permission check.
pub const ADMINISTRATOR: u64 = 0x1;
/// Role flag: dashboard and measures.
pub const VIEW_DASHBOARD: u64 = 0x8;
/// Role flag: review reports and act on them.
pub const MANAGE_REPORTS: u64 = 0x10;
/// Role flag: domain blocks and allows.
pub const MANAGE_FEDERATION: u64 = 0x20;
/// Role flag: view users' details and act on them.
pub const MANAGE_USERS: u64 = 0x400;

/// Seeds a [`FakeMastodon`] before it starts.
#[derive(Debug)]
pub struct Builder {
    state: State,
}

impl Builder {
    /// Which server to imitate.
    pub fn flavor(mut self, flavor: Flavor) -> Self {
        self.state.flavor = flavor;
        self
    }

    /// The instance title.
    pub fn title(mut self, title: &str) -> Self {
        self.state.title = title.to_owned();
        self
    }

    /// Adds an account.
    pub fn account(mut self, a: AccountSeed) -> Self {
        self.state.accounts.insert(a.id, a);
        self
    }

    /// Adds a status (with its media).
    pub fn status(mut self, s: StatusSeed) -> Self {
        self.state.statuses.insert(s.id, s);
        self
    }

    /// Adds an instance rule.
    pub fn rule(mut self, id: u64, text: &str) -> Self {
        self.state
            .rules
            .insert(id, (text.to_owned(), String::new()));
        self
    }

    /// Adds a report.
    pub fn report(mut self, r: ReportSeed) -> Self {
        self.state.add_report(r);
        self
    }

    /// Adds a domain block.
    pub fn domain_block(mut self, b: BlockSeed) -> Self {
        self.state.add_block(b);
        self
    }

    /// Adds a domain allow.
    pub fn domain_allow(mut self, domain: &str) -> Self {
        let id = self.state.next_id();
        self.state.allows.insert(
            id,
            state::Allow {
                id,
                domain: normalize_domain(domain).unwrap_or_else(|| domain.to_owned()),
                created_at: state::now_string(),
            },
        );
        self
    }

    /// Adds a follow of a local account to an account on `domain`, made on `day`
    /// (`YYYY-MM-DD`): counted by the `instance_follows` measure over periods containing `day`.
    pub fn follow(mut self, domain: &str, day: &str) -> Self {
        self.state.follows.push((domain.to_owned(), day.to_owned()));
        self
    }

    /// Sets a measure total (for `instance_*` keys, per domain).
    pub fn measure(mut self, key: &str, domain: Option<&str>, total: i64) -> Self {
        self.state
            .measures
            .insert((key.to_owned(), domain.map(str::to_owned)), total);
        self
    }

    /// Adds a bearer token with scopes, for a user account (`None`: an app-only token).
    pub fn token(mut self, token: &str, scopes: &[&str], account_id: Option<u64>) -> Self {
        self.state.tokens.insert(
            token.to_owned(),
            Token {
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                account_id,
                app_id: None,
            },
        );
        self
    }

    /// The account that "signs in and approves" on `/oauth/authorize`.
    pub fn authorizing_account(mut self, id: u64) -> Self {
        self.state.authorizing_account = Some(id);
        self
    }

    /// `false`: `/.well-known/oauth-authorization-server` answers 404 (Mastodon < 4.3).
    pub fn oauth_metadata(mut self, served: bool) -> Self {
        self.state.oauth_metadata = served;
        self
    }

    /// Who may read the public domain-block list.
    pub fn public_domain_blocks(mut self, mode: PublicBlocksMode) -> Self {
        self.state.public_blocks = mode;
        self
    }

    /// Requests allowed per window per token (default 300 per 5 minutes).
    pub fn rate_limit(mut self, limit: u64, window: Duration) -> Self {
        self.state.rate_limit = limit;
        self.state.rate_window = window;
        self
    }

    /// Emit `Link` headers with `prev` before `next` (Mastodon emits `next` first).
    pub fn links_prev_first(mut self, yes: bool) -> Self {
        self.state.links_prev_first = yes;
        self
    }

    /// Starts the server on `127.0.0.1:0` in the current tokio runtime.
    pub async fn start(self) -> std::io::Result<FakeMastodon> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut state = self.state;
        state.base_url = format!("http://{addr}");
        let shared: Shared = Arc::new(Mutex::new(state));
        let app = server::router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(FakeMastodon {
            url: format!("http://{addr}"),
            shared,
            shutdown: Some(tx),
        })
    }
}

/// A running fake Mastodon. Stops when dropped.
#[derive(Debug)]
pub struct FakeMastodon {
    url: String,
    shared: Shared,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for FakeMastodon {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl FakeMastodon {
    /// A builder with nothing seeded.
    pub fn builder() -> Builder {
        Builder {
            state: State::new(),
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// While `Some(status)`, every request gets that status with an nginx-style HTML page.
    pub fn set_outage(&self, status: Option<u16>) {
        lock(&self.shared).outage = status;
    }

    /// After `k` more requests are answered, every request gets `status` (an outage) until
    /// [`FakeMastodon::set_outage`]`(None)`.
    pub fn outage_after(&self, k: usize, status: u16) {
        lock(&self.shared).outage_after = Some((k, status));
    }

    /// Adds a follow of a local account to an account on `domain`, made on `day`.
    pub fn add_follow(&self, domain: &str, day: &str) {
        lock(&self.shared)
            .follows
            .push((domain.to_owned(), day.to_owned()));
    }

    /// Removes every follow of accounts on `domain` (they unfollowed).
    pub fn remove_follows(&self, domain: &str) {
        lock(&self.shared).follows.retain(|(d, _)| d != domain);
    }

    /// Every domain-block write (create, update, delete) that reached the API, in order.
    pub fn block_writes(&self) -> Vec<BlockWrite> {
        lock(&self.shared).block_writes.clone()
    }

    /// Every account action the API accepted, in order.
    pub fn account_actions(&self) -> Vec<ActionRecord> {
        lock(&self.shared).account_actions.clone()
    }

    /// Deletes a status (its media files then answer 404, as after a deletion on Mastodon).
    pub fn delete_status(&self, id: u64) {
        lock(&self.shared).statuses.remove(&id);
    }

    /// The next `n` requests fail with `status` and a Rails-style HTML error page.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut st = lock(&self.shared);
        for _ in 0..n {
            st.fail_next.push_back(status);
        }
    }

    /// The next `n` requests get 429, with `X-RateLimit-Reset` `reset_in` from now.
    pub fn inject_429(&self, n: u32, reset_in: Duration) {
        let mut st = lock(&self.shared);
        st.inject_429 = n;
        st.inject_429_reset = reset_in;
    }

    /// The next request to `path` gets this canned answer instead.
    pub fn inject_response(&self, path: &str, answer: Injected) {
        lock(&self.shared).injected.push((path.to_owned(), answer));
    }

    /// The next request to `path` is handled as usual (its effect stays) but answered with
    /// `status` and an HTML error page, as when the server fails after committing or the
    /// answer is lost on the way back.
    pub fn lose_response_next(&self, path: &str, status: u16) {
        lock(&self.shared)
            .lost_responses
            .push((path.to_owned(), status));
    }

    /// The next request waits `delay` before being answered.
    pub fn delay_next(&self, delay: Duration) {
        lock(&self.shared).delay_next.push_back(delay);
    }

    /// Changes the rate limit (and forgets the current windows).
    pub fn set_rate_limit(&self, limit: u64, window: Duration) {
        let mut st = lock(&self.shared);
        st.rate_limit = limit;
        st.rate_window = window;
        st.windows.clear();
    }

    /// Switches the imitated server.
    pub fn set_flavor(&self, flavor: Flavor) {
        lock(&self.shared).flavor = flavor;
    }

    /// Switches who may read the public domain-block list.
    pub fn set_public_domain_blocks(&self, mode: PublicBlocksMode) {
        lock(&self.shared).public_blocks = mode;
    }

    /// Sends `report.*` webhooks to `url`, signed with `secret`.
    pub fn set_webhook(&self, url: &str, secret: &[u8]) {
        lock(&self.shared).webhook = Some((url.to_owned(), secret.to_vec()));
    }

    /// Applies `fault` to the next webhook delivery.
    pub fn inject_webhook_fault(&self, fault: WebhookFault) {
        lock(&self.shared).webhook_faults.push_back(fault);
    }

    /// Adds a token at run time.
    pub fn add_token(&self, token: &str, scopes: &[&str], account_id: Option<u64>) {
        lock(&self.shared).tokens.insert(
            token.to_owned(),
            Token {
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                account_id,
                app_id: None,
            },
        );
    }

    /// Whether a token is still valid (e.g. after revocation).
    pub fn token_exists(&self, token: &str) -> bool {
        lock(&self.shared).tokens.contains_key(token)
    }

    /// Adds an account at run time.
    pub fn add_account(&self, a: AccountSeed) {
        lock(&self.shared).accounts.insert(a.id, a);
    }

    /// Files a report at run time (as a user would), emitting `report.created`.
    pub fn file_report(&self, r: ReportSeed) {
        let id = r.id;
        let deliveries = {
            let mut st = lock(&self.shared);
            st.add_report(r);
            st.emit("report.created", id);
            server::take_deliveries(&mut st)
        };
        for d in deliveries {
            tokio::spawn(server::deliver(self.shared.clone(), d));
        }
    }

    /// The current state of an account.
    pub fn account(&self, id: u64) -> Option<AccountSeed> {
        lock(&self.shared).accounts.get(&id).cloned()
    }

    /// The report as the admin API would render it.
    pub fn report_json(&self, id: u64) -> Option<serde_json::Value> {
        let st = lock(&self.shared);
        st.reports.get(&id).map(|r| st.report_json(r))
    }

    /// Whether a report is resolved.
    pub fn report_resolved(&self, id: u64) -> Option<bool> {
        lock(&self.shared).reports.get(&id).map(|r| r.seed.resolved)
    }

    /// The blocked domains, in id order.
    pub fn blocked_domains(&self) -> Vec<String> {
        lock(&self.shared)
            .blocks
            .values()
            .map(|b| b.domain.clone())
            .collect()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared).requests.clone()
    }

    /// Webhook deliveries made (or dropped) so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.shared).deliveries.clone()
    }

    /// Waits (up to `limit`) until at least `n` deliveries were made; returns them all.
    pub async fn wait_for_deliveries(&self, n: usize, limit: Duration) -> Vec<Delivery> {
        let start = std::time::Instant::now();
        loop {
            let d = self.deliveries();
            if d.len() >= n || start.elapsed() >= limit {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
