//! The route table: every route of the web layer, in ONE place. [`crate::router`] is built from
//! it (so a route cannot exist without an entry), the [guard](crate::auth::guard) applies each
//! entry's [`Access`], the OpenAPI document describes its `/api/v1` entries, and the tests
//! enumerate it (the authorisation table must name every entry).

use std::sync::LazyLock;

use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use guildhall_core::{Permission, Scope};

use crate::auth::Access;
use crate::{api, instances, lists, moderation, pages, AppState};

/// Which kind of client a route serves, which decides how callers authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// HTML pages: session cookie; CSRF token on every non-GET request.
    Page,
    /// JSON API: `Authorization: Bearer` API token; no cookies, no CSRF.
    Api,
    /// Probes, metrics, static files, the OpenAPI document: no authentication.
    Plain,
}

/// The type of a body field (for the OpenAPI document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A string.
    Text,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// An array of these strings (a form repeats the field).
    ManyOf(&'static [&'static str]),
}

/// One field of a route's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Its name (form field or JSON member).
    pub name: &'static str,
    /// Whether the route refuses a body without it.
    pub required: bool,
    /// Its type.
    pub ty: FieldType,
}

const fn req(name: &'static str) -> Field {
    Field {
        name,
        required: true,
        ty: FieldType::Text,
    }
}

const fn opt(name: &'static str) -> Field {
    Field {
        name,
        required: false,
        ty: FieldType::Text,
    }
}

const ROLES: &[&str] = &[
    "owner",
    "admin",
    "moderator",
    "member",
    "steward",
    "responder",
    "care",
];
const KINDS: &[&str] = &["cooperative", "instance"];
const SCOPES: &[&str] = &["read", "write", "admin"];

const ORG_FIELDS: &[Field] = &[
    req("name"),
    Field {
        name: "kind",
        required: true,
        ty: FieldType::OneOf(KINDS),
    },
    opt("domain"),
];
const ROLE_FIELD: &[Field] = &[Field {
    name: "role",
    required: true,
    ty: FieldType::OneOf(ROLES),
}];
const INVITATION_FIELDS: &[Field] = &[
    Field {
        name: "role",
        required: true,
        ty: FieldType::OneOf(ROLES),
    },
    opt("email"),
];
const TOKEN_FIELDS: &[Field] = &[
    req("name"),
    Field {
        name: "scopes",
        required: true,
        ty: FieldType::ManyOf(SCOPES),
    },
];
const ACCOUNT_FIELDS: &[Field] = &[req("email"), req("display_name"), req("password")];
const INSTANCE_TOKEN_FIELDS: &[Field] = &[req("base_url"), req("token")];

/// Identifies the handler of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum RouteId {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    HtmxJs,
    AppCss,
    Home,
    LoginForm,
    Login,
    Logout,
    SetupForm,
    Setup,
    Orgs,
    CreateOrg,
    SwitchOrg,
    Org,
    SetRole,
    RemoveMember,
    Invitations,
    CreateInvitation,
    RevokeInvitation,
    InvitationForm,
    AcceptInvitation,
    Tokens,
    CreateToken,
    RevokeToken,
    OrgAudit,
    AdminJobs,
    RetryJob,
    AdminAudit,
    ApiMe,
    ApiOrgs,
    ApiCreateOrg,
    ApiOrg,
    ApiMembers,
    ApiSetRole,
    ApiRemoveMember,
    ApiInvitations,
    ApiCreateInvitation,
    ApiRevokeInvitation,
    ApiAcceptInvitation,
    ApiTokens,
    ApiCreateToken,
    ApiRevokeToken,
    ApiAudit,
    ApiVerifyAudit,
    ApiJobs,
    ApiRetryJob,
    Instance,
    InstanceOauth,
    InstanceCallback,
    InstanceToken,
    InstanceCheck,
    InstanceDisconnect,
    InstanceWebhookSecret,
    ApiInstance,
    ApiInstanceConnect,
    ApiInstanceCheck,
    ApiInstanceDisconnect,
    ApiInstanceWebhookSecret,
    MastodonWebhook,
    /// A route of the moderation co-op (see [`crate::moderation`]).
    Moderation(moderation::Route),
    /// A route of the shared blocklists (see [`crate::lists`]).
    Lists(lists::Route),
}

/// One route: method, path (axum syntax, `{param}`), who may use it, and what it reads.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// The handler.
    pub id: RouteId,
    /// The HTTP method.
    pub method: Method,
    /// The path pattern.
    pub path: &'static str,
    /// Pages, API or plain.
    pub surface: Surface,
    /// Who may use it.
    pub access: Access,
    /// One line for people (and the OpenAPI summary).
    pub summary: &'static str,
    /// The body fields it reads (empty: no body).
    pub fields: &'static [Field],
    /// Which limit its body is read under.
    pub body: BodySize,
}

/// Which limit a route's body is read under (larger bodies get 413).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySize {
    /// Forms and JSON: [`WebConfig::body_limit`](crate::WebConfig::body_limit).
    Normal,
    /// An uploaded file: [`WebConfig::upload_limit`](crate::WebConfig::upload_limit). Set with
    /// [`RouteSpec::uploading`].
    Upload,
    /// A member instance's webhook delivery, which carries a whole report with its statuses:
    /// [`WebConfig::webhook_limit`](crate::WebConfig::webhook_limit). Set with
    /// [`RouteSpec::receiving_webhooks`].
    Webhook,
}

impl RouteSpec {
    /// The same route, marked as taking an uploaded file.
    pub const fn uploading(mut self) -> RouteSpec {
        self.body = BodySize::Upload;
        self
    }

    /// The same route, marked as receiving webhook deliveries.
    pub const fn receiving_webhooks(mut self) -> RouteSpec {
        self.body = BodySize::Webhook;
        self
    }

    /// The largest body this route accepts under `config`.
    pub fn body_limit(&self, config: &crate::WebConfig) -> usize {
        match self.body {
            BodySize::Normal => config.body_limit,
            BodySize::Upload => config.upload_limit,
            BodySize::Webhook => config.webhook_limit,
        }
    }
}

/// Builds a [`RouteSpec`]: `route!(Id, METHOD, "/path", Surface, access, "summary", fields)`, or
/// with `[expr]` in place of `Id` for a feature module's own route ids.
macro_rules! route {
    ([$id:expr], $m:ident, $path:literal, $surface:ident, $access:expr, $summary:literal, $fields:expr) => {
        $crate::routes::RouteSpec {
            id: $id,
            method: ::axum::http::Method::$m,
            path: $path,
            surface: $crate::routes::Surface::$surface,
            access: $access,
            summary: $summary,
            fields: $fields,
            body: $crate::routes::BodySize::Normal,
        }
    };
    ($id:ident, $m:ident, $path:literal, $surface:ident, $access:expr, $summary:literal, $fields:expr) => {
        RouteSpec {
            id: RouteId::$id,
            method: Method::$m,
            path: $path,
            surface: Surface::$surface,
            access: $access,
            summary: $summary,
            fields: $fields,
            body: BodySize::Normal,
        }
    };
}

#[allow(unused_imports)] // for the feature modules' tables (`crate::routes::route!`)
pub(crate) use route;

use Access::{Account, Org, Public, Site};
use Permission as P;

/// Every route: the core ones below and each feature module's. Adding a route means adding it
/// to one of those tables (and to the authorisation test's table).
pub static ROUTES: LazyLock<Vec<RouteSpec>> = LazyLock::new(|| {
    CORE.iter()
        .chain(moderation::ROUTES)
        .chain(lists::ROUTES)
        .cloned()
        .collect()
});

/// The core routes: sign-in, organisations, tokens, audit, jobs, instance connection.
static CORE: &[RouteSpec] = &[
    route!(
        Healthz,
        GET,
        "/healthz",
        Plain,
        Public,
        "Liveness probe",
        &[]
    ),
    route!(
        Readyz,
        GET,
        "/readyz",
        Plain,
        Public,
        "Readiness probe (database reachable)",
        &[]
    ),
    route!(
        Metrics,
        GET,
        "/metrics",
        Plain,
        Public,
        "Prometheus metrics",
        &[]
    ),
    route!(
        OpenApi,
        GET,
        "/api/openapi.json",
        Plain,
        Public,
        "This API's OpenAPI document",
        &[]
    ),
    route!(
        HtmxJs,
        GET,
        "/static/htmx.min.js",
        Plain,
        Public,
        "htmx (vendored)",
        &[]
    ),
    route!(
        AppCss,
        GET,
        "/static/app.css",
        Plain,
        Public,
        "Style sheet",
        &[]
    ),
    // Pages.
    route!(
        Home,
        GET,
        "/",
        Page,
        Account(Scope::Read),
        "Start page",
        &[]
    ),
    route!(LoginForm, GET, "/login", Page, Public, "Sign-in form", &[]),
    route!(
        Login,
        POST,
        "/login",
        Page,
        Public,
        "Sign in",
        &[req("email"), req("password"), opt("next")]
    ),
    route!(Logout, POST, "/logout", Page, Public, "Sign out", &[]),
    route!(
        SetupForm,
        GET,
        "/setup",
        Page,
        Access::Setup,
        "First-run setup form",
        &[]
    ),
    route!(
        Setup,
        POST,
        "/setup",
        Page,
        Access::Setup,
        "Create the first owner",
        ACCOUNT_FIELDS
    ),
    route!(
        Orgs,
        GET,
        "/orgs",
        Page,
        Account(Scope::Read),
        "My organisations",
        &[]
    ),
    route!(
        CreateOrg,
        POST,
        "/orgs",
        Page,
        Site(Scope::Write),
        "Create an organisation",
        ORG_FIELDS
    ),
    route!(
        SwitchOrg,
        POST,
        "/switch",
        Page,
        Account(Scope::Read),
        "Choose the current organisation",
        &[req("org")]
    ),
    route!(
        Org,
        GET,
        "/orgs/{org}",
        Page,
        Org(P::ViewMembers),
        "An organisation and its members",
        &[]
    ),
    route!(
        SetRole,
        POST,
        "/orgs/{org}/members/{account}/role",
        Page,
        Org(P::ManageMembers),
        "Change a member's role",
        ROLE_FIELD
    ),
    route!(
        RemoveMember,
        POST,
        "/orgs/{org}/members/{account}/remove",
        Page,
        Org(P::ManageMembers),
        "Remove a member",
        &[]
    ),
    route!(
        Invitations,
        GET,
        "/orgs/{org}/invitations",
        Page,
        Org(P::ManageInvitations),
        "Invitations",
        &[]
    ),
    route!(
        CreateInvitation,
        POST,
        "/orgs/{org}/invitations",
        Page,
        Org(P::ManageInvitations),
        "Create an invitation link",
        INVITATION_FIELDS
    ),
    route!(
        RevokeInvitation,
        POST,
        "/orgs/{org}/invitations/{id}/revoke",
        Page,
        Org(P::ManageInvitations),
        "Revoke an invitation",
        &[]
    ),
    route!(
        InvitationForm,
        GET,
        "/invite/{token}",
        Page,
        Public,
        "An invitation",
        &[]
    ),
    route!(
        AcceptInvitation,
        POST,
        "/invite/{token}",
        Page,
        Public,
        "Accept an invitation (creates the account if needed)",
        &[opt("email"), opt("display_name"), opt("password")]
    ),
    route!(
        Tokens,
        GET,
        "/tokens",
        Page,
        Account(Scope::Read),
        "My API tokens",
        &[]
    ),
    route!(
        CreateToken,
        POST,
        "/tokens",
        Page,
        Account(Scope::Admin),
        "Create an API token",
        TOKEN_FIELDS
    ),
    route!(
        RevokeToken,
        POST,
        "/tokens/{id}/revoke",
        Page,
        Account(Scope::Admin),
        "Revoke an API token",
        &[]
    ),
    route!(
        OrgAudit,
        GET,
        "/orgs/{org}/audit",
        Page,
        Org(P::ViewAuditLog),
        "The organisation's audit log",
        &[]
    ),
    route!(
        AdminJobs,
        GET,
        "/admin/jobs",
        Page,
        Site(Scope::Admin),
        "Failed jobs",
        &[]
    ),
    route!(
        RetryJob,
        POST,
        "/admin/jobs/{id}/retry",
        Page,
        Site(Scope::Admin),
        "Retry a failed job",
        &[]
    ),
    route!(
        AdminAudit,
        GET,
        "/admin/audit",
        Page,
        Site(Scope::Admin),
        "The whole audit log and its verification",
        &[]
    ),
    // JSON API.
    route!(
        ApiMe,
        GET,
        "/api/v1/me",
        Api,
        Account(Scope::Read),
        "The caller's account and memberships",
        &[]
    ),
    route!(
        ApiOrgs,
        GET,
        "/api/v1/orgs",
        Api,
        Account(Scope::Read),
        "The caller's organisations",
        &[]
    ),
    route!(
        ApiCreateOrg,
        POST,
        "/api/v1/orgs",
        Api,
        Site(Scope::Write),
        "Create an organisation (the caller becomes its owner)",
        ORG_FIELDS
    ),
    route!(
        ApiOrg,
        GET,
        "/api/v1/orgs/{org}",
        Api,
        Org(P::ViewOrganisation),
        "An organisation",
        &[]
    ),
    route!(
        ApiMembers,
        GET,
        "/api/v1/orgs/{org}/members",
        Api,
        Org(P::ViewMembers),
        "Members and roles",
        &[]
    ),
    route!(
        ApiSetRole,
        PUT,
        "/api/v1/orgs/{org}/members/{account}",
        Api,
        Org(P::ManageMembers),
        "Change a member's role",
        ROLE_FIELD
    ),
    route!(
        ApiRemoveMember,
        DELETE,
        "/api/v1/orgs/{org}/members/{account}",
        Api,
        Org(P::ManageMembers),
        "Remove a member",
        &[]
    ),
    route!(
        ApiInvitations,
        GET,
        "/api/v1/orgs/{org}/invitations",
        Api,
        Org(P::ManageInvitations),
        "Invitations",
        &[]
    ),
    route!(
        ApiCreateInvitation,
        POST,
        "/api/v1/orgs/{org}/invitations",
        Api,
        Org(P::ManageInvitations),
        "Create an invitation (the link is returned once)",
        INVITATION_FIELDS
    ),
    route!(
        ApiRevokeInvitation,
        DELETE,
        "/api/v1/orgs/{org}/invitations/{id}",
        Api,
        Org(P::ManageInvitations),
        "Revoke an invitation",
        &[]
    ),
    route!(
        ApiAcceptInvitation,
        POST,
        "/api/v1/invitations/accept",
        Api,
        Account(Scope::Write),
        "Accept an invitation as the caller",
        &[req("token")]
    ),
    route!(
        ApiTokens,
        GET,
        "/api/v1/tokens",
        Api,
        Account(Scope::Read),
        "The caller's API tokens",
        &[]
    ),
    route!(
        ApiCreateToken,
        POST,
        "/api/v1/tokens",
        Api,
        Account(Scope::Admin),
        "Create an API token (returned once)",
        TOKEN_FIELDS
    ),
    route!(
        ApiRevokeToken,
        DELETE,
        "/api/v1/tokens/{id}",
        Api,
        Account(Scope::Admin),
        "Revoke an API token",
        &[]
    ),
    route!(
        ApiAudit,
        GET,
        "/api/v1/orgs/{org}/audit",
        Api,
        Org(P::ViewAuditLog),
        "The organisation's audit log",
        &[]
    ),
    route!(
        ApiVerifyAudit,
        GET,
        "/api/v1/audit/verify",
        Api,
        Site(Scope::Admin),
        "Verify the audit log's hash chain",
        &[]
    ),
    route!(
        ApiJobs,
        GET,
        "/api/v1/jobs",
        Api,
        Site(Scope::Admin),
        "Jobs in a state (default: dead)",
        &[]
    ),
    route!(
        ApiRetryJob,
        POST,
        "/api/v1/jobs/{id}/retry",
        Api,
        Site(Scope::Admin),
        "Retry a dead job",
        &[]
    ),
    // Member instances (crate::instances).
    route!(
        Instance,
        GET,
        "/orgs/{org}/instance",
        Page,
        Org(P::EditOrganisation),
        "The organisation's Mastodon instance",
        &[]
    ),
    route!(
        InstanceOauth,
        POST,
        "/orgs/{org}/instance/oauth",
        Page,
        Org(P::EditOrganisation),
        "Connect the instance through OAuth (redirects to the instance)",
        &[req("base_url")]
    ),
    route!(
        InstanceCallback,
        GET,
        "/orgs/{org}/instance/callback",
        Page,
        Org(P::EditOrganisation),
        "Where the instance sends the admin back after authorising",
        &[]
    ),
    route!(
        InstanceToken,
        POST,
        "/orgs/{org}/instance/token",
        Page,
        Org(P::EditOrganisation),
        "Connect the instance with a pasted token",
        INSTANCE_TOKEN_FIELDS
    ),
    route!(
        InstanceCheck,
        POST,
        "/orgs/{org}/instance/check",
        Page,
        Org(P::EditOrganisation),
        "Check the instance token again",
        &[]
    ),
    route!(
        InstanceDisconnect,
        POST,
        "/orgs/{org}/instance/disconnect",
        Page,
        Org(P::EditOrganisation),
        "Disconnect the instance (revoking the token where possible)",
        &[]
    ),
    route!(
        InstanceWebhookSecret,
        POST,
        "/orgs/{org}/instance/webhook-secret",
        Page,
        Org(P::EditOrganisation),
        "Make a new webhook secret (shown once)",
        &[]
    ),
    route!(
        ApiInstance,
        GET,
        "/api/v1/orgs/{org}/instance",
        Api,
        Org(P::EditOrganisation),
        "The organisation's instance connection and its last check",
        &[]
    ),
    route!(
        ApiInstanceConnect,
        PUT,
        "/api/v1/orgs/{org}/instance",
        Api,
        Org(P::EditOrganisation),
        "Connect the instance with a service account's token (checked at once)",
        INSTANCE_TOKEN_FIELDS
    ),
    route!(
        ApiInstanceCheck,
        POST,
        "/api/v1/orgs/{org}/instance/check",
        Api,
        Org(P::EditOrganisation),
        "Check the instance token again",
        &[]
    ),
    route!(
        ApiInstanceDisconnect,
        DELETE,
        "/api/v1/orgs/{org}/instance",
        Api,
        Org(P::EditOrganisation),
        "Disconnect the instance (revoking the token where possible)",
        &[]
    ),
    route!(
        ApiInstanceWebhookSecret,
        POST,
        "/api/v1/orgs/{org}/instance/webhook-secret",
        Api,
        Org(P::EditOrganisation),
        "Make a new webhook secret (returned once)",
        &[]
    ),
    route!(
        MastodonWebhook,
        POST,
        "/webhooks/mastodon/{id}",
        Plain,
        Public,
        "Mastodon webhook deliveries (X-Hub-Signature checked)",
        &[]
    )
    .receiving_webhooks(),
];

/// The handler of a route, answering `filter`.
fn handler(id: RouteId, filter: MethodFilter) -> MethodRouter<AppState> {
    use RouteId as R;
    match id {
        R::Healthz => on(filter, pages::healthz),
        R::Readyz => on(filter, pages::readyz),
        R::Metrics => on(filter, crate::metrics::render),
        R::OpenApi => on(filter, crate::openapi::document),
        R::HtmxJs => on(filter, pages::htmx_js),
        R::AppCss => on(filter, pages::app_css),
        R::Home => on(filter, pages::home),
        R::LoginForm => on(filter, pages::login_form),
        R::Login => on(filter, pages::login),
        R::Logout => on(filter, pages::logout),
        R::SetupForm => on(filter, pages::setup_form),
        R::Setup => on(filter, pages::setup),
        R::Orgs => on(filter, pages::orgs),
        R::CreateOrg => on(filter, pages::create_org),
        R::SwitchOrg => on(filter, pages::switch_org),
        R::Org => on(filter, pages::org),
        R::SetRole => on(filter, pages::set_role),
        R::RemoveMember => on(filter, pages::remove_member),
        R::Invitations => on(filter, pages::invitations),
        R::CreateInvitation => on(filter, pages::create_invitation),
        R::RevokeInvitation => on(filter, pages::revoke_invitation),
        R::InvitationForm => on(filter, pages::invitation_form),
        R::AcceptInvitation => on(filter, pages::accept_invitation),
        R::Tokens => on(filter, pages::tokens),
        R::CreateToken => on(filter, pages::create_token),
        R::RevokeToken => on(filter, pages::revoke_token),
        R::OrgAudit => on(filter, pages::org_audit),
        R::AdminJobs => on(filter, pages::admin_jobs),
        R::RetryJob => on(filter, pages::retry_job),
        R::AdminAudit => on(filter, pages::admin_audit),
        R::ApiMe => on(filter, api::me),
        R::ApiOrgs => on(filter, api::orgs),
        R::ApiCreateOrg => on(filter, api::create_org),
        R::ApiOrg => on(filter, api::org),
        R::ApiMembers => on(filter, api::members),
        R::ApiSetRole => on(filter, api::set_role),
        R::ApiRemoveMember => on(filter, api::remove_member),
        R::ApiInvitations => on(filter, api::invitations),
        R::ApiCreateInvitation => on(filter, api::create_invitation),
        R::ApiRevokeInvitation => on(filter, api::revoke_invitation),
        R::ApiAcceptInvitation => on(filter, api::accept_invitation),
        R::ApiTokens => on(filter, api::tokens),
        R::ApiCreateToken => on(filter, api::create_token),
        R::ApiRevokeToken => on(filter, api::revoke_token),
        R::ApiAudit => on(filter, api::audit),
        R::ApiVerifyAudit => on(filter, api::verify_audit),
        R::ApiJobs => on(filter, api::jobs),
        R::ApiRetryJob => on(filter, api::retry_job),
        R::Instance => on(filter, instances::page),
        R::InstanceOauth => on(filter, instances::start_oauth),
        R::InstanceCallback => on(filter, instances::callback),
        R::InstanceToken => on(filter, instances::paste_token),
        R::InstanceCheck => on(filter, instances::recheck),
        R::InstanceDisconnect => on(filter, instances::disconnect_page),
        R::InstanceWebhookSecret => on(filter, instances::webhook_secret_page),
        R::ApiInstance => on(filter, instances::api_get),
        R::ApiInstanceConnect => on(filter, instances::api_connect),
        R::ApiInstanceCheck => on(filter, instances::api_check),
        R::ApiInstanceDisconnect => on(filter, instances::api_disconnect),
        R::ApiInstanceWebhookSecret => on(filter, instances::api_webhook_secret),
        R::Moderation(r) => moderation::handler(r, filter),
        R::Lists(r) => lists::handler(r, filter),
        R::MastodonWebhook => on(filter, instances::webhook),
    }
}

/// The method filter for a table method.
fn filter(m: &Method) -> MethodFilter {
    match *m {
        Method::POST => MethodFilter::POST,
        Method::PUT => MethodFilter::PUT,
        Method::DELETE => MethodFilter::DELETE,
        Method::PATCH => MethodFilter::PATCH,
        _ => MethodFilter::GET,
    }
}

/// The method router of one table entry, behind its guard.
pub(crate) fn method_router(spec: &'static RouteSpec, state: &AppState) -> MethodRouter<AppState> {
    let guard = axum::middleware::from_fn_with_state(
        crate::auth::GuardState {
            app: state.clone(),
            spec,
        },
        crate::auth::guard,
    );
    handler(spec.id, filter(&spec.method)).route_layer(guard)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn table_has_no_duplicates_and_org_routes_name_the_org() {
        let mut seen = HashSet::new();
        let mut ids = HashSet::new();
        for r in ROUTES.iter() {
            assert!(
                seen.insert((r.method.clone(), r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            assert!(ids.insert(r.id), "{:?} twice", r.id);
            if matches!(r.access, Access::Org(_)) {
                assert!(r.path.contains("{org}"), "{} needs {{org}}", r.path);
            }
            if r.surface == Surface::Api {
                assert!(r.path.starts_with("/api/v1/"), "{}", r.path);
            }
        }
    }
}
