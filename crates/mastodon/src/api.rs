//! The endpoints (`mastodon-api.md` §2, §6–§9).

use reqwest::Method;
use serde::de::DeserializeOwned;
use url::Url;

use crate::access::{scope_covers, AccessReport, Capability, Grant, Permissions, CAPABILITIES};
use crate::client::{decode, Body, Client, Page, Request};
use crate::error::{Error, Result};
use crate::models::{
    Account, AccountAction, AdminAccount, AdminReport, Application, DomainAllow, DomainBlock,
    DomainBlockParams, Instance, Measure, MeasureQuery, NodeInfo, PublicDomainBlock,
    ReportCategory, ReportFilter, Rule,
};

fn report_query(filter: &ReportFilter) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(r) = filter.resolved {
        q.push(("resolved", r.to_string()));
    }
    if let Some(a) = &filter.account_id {
        q.push(("account_id", a.clone()));
    }
    if let Some(t) = &filter.target_account_id {
        q.push(("target_account_id", t.clone()));
    }
    if let Some(l) = filter.limit {
        q.push(("limit", l.to_string()));
    }
    q
}

/// Path segments from user input are percent-encoded so an id cannot change the path.
fn seg(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

impl Client {
    fn req(&self, method: Method, path: &str, body: Body, idempotent: bool) -> Result<Request> {
        Ok(Request {
            method,
            url: self.url(path, &[])?,
            body,
            auth: true,
            idempotent,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let req = self.req(Method::GET, path, Body::None, true)?;
        self.call_json(req).await
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: Body, idem: bool) -> Result<T> {
        let req = self.req(Method::POST, path, body, idem)?;
        self.call_json(req).await
    }

    // ----- credentials and instance information -----

    /// `GET /api/v1/apps/verify_credentials`: whether the token is valid at all (any token).
    pub async fn verify_app(&self) -> Result<Application> {
        self.get("/api/v1/apps/verify_credentials").await
    }

    /// `GET /api/v1/accounts/verify_credentials`: the token's account with its role (needs
    /// `read:accounts`, which Guildhall does not ask for; see [`Client::check_access`]).
    pub async fn verify_credentials(&self) -> Result<Account> {
        self.get("/api/v1/accounts/verify_credentials").await
    }

    /// Checks what the token may do: validity (401 → [`Error::InvalidToken`]), then each
    /// capability Guildhall needs, from the scopes known from the token exchange (`scopes`),
    /// the role shown by `verify_credentials` where the token may read it, and harmless read
    /// probes (one-item list requests). Write scopes cannot be probed without side effects:
    /// without `scopes` they are [`Grant::Unknown`] unless the server lists the app's scopes.
    pub async fn check_access(&self, scopes: Option<&[String]>) -> Result<AccessReport> {
        let app = self.verify_app().await?;
        let known_scopes: Option<Vec<String>> = scopes.map(<[String]>::to_vec);
        let app_scopes = app.scopes.clone();
        let account = match self.verify_credentials().await {
            Ok(a) => Some(a),
            Err(Error::MissingScope { .. } | Error::Forbidden { .. } | Error::NotFound { .. }) => {
                None
            }
            Err(e) => return Err(e),
        };
        let permissions: Option<Permissions> = account
            .as_ref()
            .and_then(|a| a.role.as_ref())
            .and_then(|r| r.permissions);
        let mut capabilities = Vec::new();
        // Results of read probes by permission, to infer the write side's permission.
        let mut perm_seen: Vec<(Permissions, bool)> = Vec::new();
        for &(purpose, area, scope, permission, probe) in CAPABILITIES {
            let mut scope_ok: Option<bool> = known_scopes
                .as_deref()
                .map(|granted| scope_covers(granted, scope));
            let mut perm_ok: Option<bool> = permissions.map(|p| p.allows(permission));
            if let Some(path) = probe {
                let url = self.url(path, &[("limit", "1".to_owned())])?;
                let probe_result: Result<Page<serde_json::Value>> = self.page(url).await;
                match probe_result {
                    Ok(_) => {
                        scope_ok = Some(true);
                        perm_ok = Some(true);
                    }
                    Err(Error::MissingScope { .. }) => scope_ok = Some(false),
                    Err(Error::MissingPermission { .. }) => {
                        scope_ok = Some(true);
                        perm_ok = Some(false);
                    }
                    Err(e) if e.is_transient() => return Err(e),
                    Err(_) => {}
                }
                if let Some(ok) = perm_ok {
                    perm_seen.push((permission, ok));
                }
            } else if perm_ok.is_none() {
                perm_ok = perm_seen
                    .iter()
                    .find(|(p, _)| *p == permission)
                    .map(|(_, ok)| *ok);
            }
            if scope_ok.is_none() {
                // The app's registered scopes bound the token's: missing there means missing.
                if let Some(app_scopes) = &app_scopes {
                    if !scope_covers(app_scopes, scope) {
                        scope_ok = Some(false);
                    }
                }
            }
            let grant = match (scope_ok, perm_ok) {
                (Some(true), Some(true)) => Grant::Yes,
                (Some(false), Some(false)) => Grant::MissingBoth,
                (Some(false), _) => Grant::MissingScope,
                (_, Some(false)) => Grant::MissingPermission,
                _ => Grant::Unknown,
            };
            capabilities.push(Capability {
                purpose,
                area,
                scope,
                permission,
                grant,
            });
        }
        Ok(AccessReport {
            account,
            scopes: known_scopes.or(app_scopes),
            permissions,
            capabilities,
        })
    }

    /// `GET /api/v2/instance`; servers without it (404: Mastodon < 4.0, some Akkoma
    /// versions) are asked `GET /api/v1/instance` instead.
    pub async fn instance(&self) -> Result<Instance> {
        match self.get("/api/v2/instance").await {
            Err(Error::NotFound { .. }) => {
                let v1: crate::models::InstanceV1 = self.get("/api/v1/instance").await?;
                Ok(v1.into())
            }
            other => other,
        }
    }

    /// `GET /api/v1/instance/rules`.
    pub async fn rules(&self) -> Result<Vec<Rule>> {
        self.get("/api/v1/instance/rules").await
    }

    /// NodeInfo: `/.well-known/nodeinfo`, then the 2.x document it links to.
    pub async fn nodeinfo(&self) -> Result<NodeInfo> {
        #[derive(serde::Deserialize)]
        struct Links {
            links: Vec<LinkEntry>,
        }
        #[derive(serde::Deserialize)]
        struct LinkEntry {
            #[serde(default)]
            rel: String,
            href: String,
        }
        let req = Request {
            method: Method::GET,
            url: self.url("/.well-known/nodeinfo", &[])?,
            body: Body::None,
            auth: false,
            idempotent: true,
        };
        let links: Links = self.call_json(req).await?;
        let best = links
            .links
            .iter()
            .filter(|l| {
                l.rel
                    .starts_with("http://nodeinfo.diaspora.software/ns/schema/2.")
            })
            .max_by(|a, b| a.rel.cmp(&b.rel))
            .ok_or_else(|| Error::BadResponse {
                endpoint: "GET /.well-known/nodeinfo".to_owned(),
                reason: "no NodeInfo 2.x link".to_owned(),
            })?;
        let url = Url::parse(&best.href)
            .or_else(|_| self.base.join(&best.href))
            .map_err(|e| Error::InvalidUrl {
                url: best.href.clone(),
                reason: e.to_string(),
            })?;
        let req = Request {
            method: Method::GET,
            url,
            body: Body::None,
            auth: false,
            idempotent: true,
        };
        self.call_json(req).await
    }

    /// `GET /api/v1/instance/domain_blocks` (complete list, no pagination). `404` (the
    /// admin shows it to no one) becomes [`Error::NotFound`]; `401` (users only, no valid
    /// token) [`Error::InvalidToken`].
    pub async fn public_domain_blocks(&self) -> Result<Vec<PublicDomainBlock>> {
        self.get("/api/v1/instance/domain_blocks").await
    }

    // ----- reports -----

    /// `GET /api/v1/admin/reports`: one page. Without `resolved: Some(true)` only unresolved
    /// reports come back.
    pub async fn reports(&self, filter: &ReportFilter) -> Result<Page<AdminReport>> {
        let url = self.url("/api/v1/admin/reports", &report_query(filter))?;
        self.page(url).await
    }

    /// Every report matching `filter`, following `Link: rel="next"` (default page size 200).
    pub async fn all_reports(&self, filter: &ReportFilter) -> Result<Vec<AdminReport>> {
        let mut f = filter.clone();
        f.limit = Some(f.limit.unwrap_or(200));
        let url = self.url("/api/v1/admin/reports", &report_query(&f))?;
        self.all_pages(url).await
    }

    /// Fetches the page a `Link` target (`Page::next` / `Page::prev`) points to.
    pub async fn follow<T: DeserializeOwned>(&self, link: &Url) -> Result<Page<T>> {
        if !self.same_origin(link) {
            return Err(Error::InvalidUrl {
                url: link.to_string(),
                reason: "not on this instance".to_owned(),
            });
        }
        self.page(link.clone()).await
    }

    /// `GET /api/v1/admin/reports/:id`.
    pub async fn report(&self, id: &str) -> Result<AdminReport> {
        self.get(&format!("/api/v1/admin/reports/{}", seg(id)))
            .await
    }

    async fn report_op(&self, id: &str, op: &str, body: Body) -> Result<AdminReport> {
        self.post(
            &format!("/api/v1/admin/reports/{}/{op}", seg(id)),
            body,
            true,
        )
        .await
    }

    /// `POST /api/v1/admin/reports/:id/assign_to_self` (idempotent).
    pub async fn assign_report_to_self(&self, id: &str) -> Result<AdminReport> {
        self.report_op(id, "assign_to_self", Body::None).await
    }

    /// `POST /api/v1/admin/reports/:id/unassign` (idempotent).
    pub async fn unassign_report(&self, id: &str) -> Result<AdminReport> {
        self.report_op(id, "unassign", Body::None).await
    }

    /// `POST /api/v1/admin/reports/:id/resolve` (idempotent). `comment` is sent as
    /// GoToSocial's `action_taken_comment`; Mastodon ignores it.
    pub async fn resolve_report(&self, id: &str, comment: Option<&str>) -> Result<AdminReport> {
        let body = match comment {
            Some(c) => Body::Form(vec![("action_taken_comment".to_owned(), c.to_owned())]),
            None => Body::None,
        };
        self.report_op(id, "resolve", body).await
    }

    /// `POST /api/v1/admin/reports/:id/reopen` (idempotent).
    pub async fn reopen_report(&self, id: &str) -> Result<AdminReport> {
        self.report_op(id, "reopen", Body::None).await
    }

    /// `PUT /api/v1/admin/reports/:id` with a category and/or rule ids.
    pub async fn update_report(
        &self,
        id: &str,
        category: Option<&ReportCategory>,
        rule_ids: Option<&[String]>,
    ) -> Result<AdminReport> {
        let mut form = Vec::new();
        if let Some(c) = category {
            form.push(("category".to_owned(), c.as_str().to_owned()));
        }
        if let Some(ids) = rule_ids {
            for r in ids {
                form.push(("rule_ids[]".to_owned(), r.clone()));
            }
        }
        let req = self.req(
            Method::PUT,
            &format!("/api/v1/admin/reports/{}", seg(id)),
            Body::Form(form),
            true,
        )?;
        self.call_json(req).await
    }

    // ----- accounts -----

    /// `GET /api/v1/admin/accounts/:id`.
    pub async fn admin_account(&self, id: &str) -> Result<AdminAccount> {
        self.get(&format!("/api/v1/admin/accounts/{}", seg(id)))
            .await
    }

    /// `POST /api/v1/admin/accounts/:id/action`. Mastodon answers `{}`, GoToSocial
    /// `{"message":"OK"}`; both are success. Not retried after a 5xx (not idempotent).
    pub async fn account_action(&self, account_id: &str, action: &AccountAction) -> Result<()> {
        let mut form = vec![("type".to_owned(), action.kind.as_str().to_owned())];
        if let Some(r) = &action.report_id {
            form.push(("report_id".to_owned(), r.clone()));
        }
        if let Some(w) = &action.warning_preset_id {
            form.push(("warning_preset_id".to_owned(), w.clone()));
        }
        if let Some(t) = &action.text {
            form.push(("text".to_owned(), t.clone()));
        }
        if let Some(s) = action.send_email_notification {
            form.push(("send_email_notification".to_owned(), s.to_string()));
        }
        let req = self.req(
            Method::POST,
            &format!("/api/v1/admin/accounts/{}/action", seg(account_id)),
            Body::Form(form),
            false,
        )?;
        let resp = self.call(req).await?;
        // Check the answer is JSON at all (an HTML 200 page means something is wrong).
        let _: serde_json::Value = decode(&resp)?;
        Ok(())
    }

    async fn account_op(&self, id: &str, op: &str) -> Result<AdminAccount> {
        self.post(
            &format!("/api/v1/admin/accounts/{}/{op}", seg(id)),
            Body::None,
            true,
        )
        .await
    }

    /// `POST /api/v1/admin/accounts/:id/unsilence`.
    pub async fn unsilence_account(&self, id: &str) -> Result<AdminAccount> {
        self.account_op(id, "unsilence").await
    }

    /// `POST /api/v1/admin/accounts/:id/unsuspend`.
    pub async fn unsuspend_account(&self, id: &str) -> Result<AdminAccount> {
        self.account_op(id, "unsuspend").await
    }

    /// `POST /api/v1/admin/accounts/:id/unsensitive`.
    pub async fn unsensitive_account(&self, id: &str) -> Result<AdminAccount> {
        self.account_op(id, "unsensitive").await
    }

    /// `POST /api/v1/admin/accounts/:id/enable`.
    pub async fn enable_account(&self, id: &str) -> Result<AdminAccount> {
        self.account_op(id, "enable").await
    }

    // ----- domain blocks and allows -----

    /// `GET /api/v1/admin/domain_blocks`: one page.
    pub async fn domain_blocks(&self, limit: Option<u32>) -> Result<Page<DomainBlock>> {
        let q: Vec<(&str, String)> = limit
            .map(|l| ("limit", l.to_string()))
            .into_iter()
            .collect();
        let url = self.url("/api/v1/admin/domain_blocks", &q)?;
        self.page(url).await
    }

    /// Every domain block, following `Link: rel="next"`.
    pub async fn all_domain_blocks(&self) -> Result<Vec<DomainBlock>> {
        let url = self.url(
            "/api/v1/admin/domain_blocks",
            &[("limit", "200".to_owned())],
        )?;
        self.all_pages(url).await
    }

    /// `GET /api/v1/admin/domain_blocks/:id`.
    pub async fn domain_block(&self, id: &str) -> Result<DomainBlock> {
        self.get(&format!("/api/v1/admin/domain_blocks/{}", seg(id)))
            .await
    }

    /// `POST /api/v1/admin/domain_blocks`. A block on the domain or a parent gives
    /// [`Error::StricterBlockExists`] with that block (Mastodon); GoToSocial answers the
    /// existing block instead.
    pub async fn create_domain_block(
        &self,
        domain: &str,
        params: &DomainBlockParams,
    ) -> Result<DomainBlock> {
        let mut body = serde_json::to_value(params).map_err(|e| Error::BadResponse {
            endpoint: "POST /api/v1/admin/domain_blocks".to_owned(),
            reason: format!("could not encode the request: {e}"),
        })?;
        if let Some(obj) = body.as_object_mut() {
            obj.insert("domain".to_owned(), serde_json::Value::from(domain));
        }
        self.post("/api/v1/admin/domain_blocks", Body::Json(body), false)
            .await
    }

    /// `PUT /api/v1/admin/domain_blocks/:id` (the domain cannot change).
    pub async fn update_domain_block(
        &self,
        id: &str,
        params: &DomainBlockParams,
    ) -> Result<DomainBlock> {
        let body = serde_json::to_value(params).map_err(|e| Error::BadResponse {
            endpoint: "PUT /api/v1/admin/domain_blocks".to_owned(),
            reason: format!("could not encode the request: {e}"),
        })?;
        let req = self.req(
            Method::PUT,
            &format!("/api/v1/admin/domain_blocks/{}", seg(id)),
            Body::Json(body),
            true,
        )?;
        self.call_json(req).await
    }

    /// `DELETE /api/v1/admin/domain_blocks/:id`. Mastodon answers `{}`, GoToSocial the
    /// deleted block; both are success.
    pub async fn delete_domain_block(&self, id: &str) -> Result<()> {
        let req = self.req(
            Method::DELETE,
            &format!("/api/v1/admin/domain_blocks/{}", seg(id)),
            Body::None,
            true,
        )?;
        let resp = self.call(req).await?;
        let _: serde_json::Value = decode(&resp)?;
        Ok(())
    }

    /// `GET /api/v1/admin/domain_allows`: one page.
    pub async fn domain_allows(&self, limit: Option<u32>) -> Result<Page<DomainAllow>> {
        let q: Vec<(&str, String)> = limit
            .map(|l| ("limit", l.to_string()))
            .into_iter()
            .collect();
        let url = self.url("/api/v1/admin/domain_allows", &q)?;
        self.page(url).await
    }

    /// Every domain allow, following `Link: rel="next"`.
    pub async fn all_domain_allows(&self) -> Result<Vec<DomainAllow>> {
        let url = self.url(
            "/api/v1/admin/domain_allows",
            &[("limit", "200".to_owned())],
        )?;
        self.all_pages(url).await
    }

    /// `GET /api/v1/admin/domain_allows/:id`.
    pub async fn domain_allow(&self, id: &str) -> Result<DomainAllow> {
        self.get(&format!("/api/v1/admin/domain_allows/{}", seg(id)))
            .await
    }

    /// `POST /api/v1/admin/domain_allows`.
    pub async fn create_domain_allow(&self, domain: &str) -> Result<DomainAllow> {
        let body = Body::Form(vec![("domain".to_owned(), domain.to_owned())]);
        self.post("/api/v1/admin/domain_allows", body, false).await
    }

    /// `DELETE /api/v1/admin/domain_allows/:id`.
    pub async fn delete_domain_allow(&self, id: &str) -> Result<()> {
        let req = self.req(
            Method::DELETE,
            &format!("/api/v1/admin/domain_allows/{}", seg(id)),
            Body::None,
            true,
        )?;
        let resp = self.call(req).await?;
        let _: serde_json::Value = decode(&resp)?;
        Ok(())
    }

    // ----- measures -----

    /// `POST /api/v1/admin/measures` (scope `admin:read`, permission View Dashboard).
    pub async fn measures(&self, query: &MeasureQuery) -> Result<Vec<Measure>> {
        let mut body = serde_json::json!({
            "keys": query.keys,
            "start_at": query.start_at,
            "end_at": query.end_at,
        });
        if let (Some(domain), Some(obj)) = (&query.domain, body.as_object_mut()) {
            for key in query.keys.iter().filter(|k| k.starts_with("instance_")) {
                obj.insert(key.clone(), serde_json::json!({ "domain": domain }));
            }
        }
        self.post("/api/v1/admin/measures", Body::Json(body), true)
            .await
    }
}
