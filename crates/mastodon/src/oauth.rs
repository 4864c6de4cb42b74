//! OAuth: app registration, the authorization-code flow with PKCE, and revocation
//! (`mastodon-api.md` §2).

use base64::Engine;
use reqwest::Method;
use sha2::{Digest, Sha256};
use url::Url;

use crate::access::guildhall_scope_string;
use crate::client::{Body, Client, Request};
use crate::error::{Error, Result};
use crate::models::{OAuthMetadata, RegisteredApp, TokenGrant};
use crate::secret::Secret;

/// A PKCE verifier and its S256 challenge. The verifier never shows in `Debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkce {
    /// The verifier (sent with the code exchange).
    pub verifier: Secret,
    /// `base64url(sha256(verifier))` (sent with the authorisation request).
    pub challenge: String,
}

impl Pkce {
    /// A PKCE pair for a given verifier.
    pub fn from_verifier(verifier: &str) -> Self {
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier: Secret::new(verifier),
            challenge,
        }
    }

    /// A fresh random PKCE pair (43 characters of verifier).
    pub fn generate() -> Result<Self> {
        Ok(Self::from_verifier(&random_token()?))
    }
}

/// 32 random bytes, base64url: for PKCE verifiers and OAuth `state` values.
pub fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Setup(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl Client {
    /// `GET /.well-known/oauth-authorization-server` (4.3+). `Ok(None)` on 404: an older
    /// server, use the fixed endpoints.
    pub async fn oauth_metadata(&self) -> Result<Option<OAuthMetadata>> {
        let req = Request {
            method: Method::GET,
            url: self.url("/.well-known/oauth-authorization-server", &[])?,
            body: Body::None,
            auth: false,
            idempotent: true,
        };
        match self.call_json(req).await {
            Ok(m) => Ok(Some(m)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /api/v1/apps` asking exactly [`crate::GUILDHALL_SCOPES`] (or `scopes`, when
    /// given, space-separated).
    pub async fn register_app(
        &self,
        client_name: &str,
        redirect_uris: &[String],
        website: Option<&str>,
        scopes: Option<&str>,
    ) -> Result<RegisteredApp> {
        let mut body = serde_json::json!({
            "client_name": client_name,
            "redirect_uris": redirect_uris,
            "scopes": scopes.map_or_else(guildhall_scope_string, str::to_owned),
        });
        if let (Some(w), Some(obj)) = (website, body.as_object_mut()) {
            obj.insert("website".to_owned(), serde_json::Value::from(w));
        }
        let req = Request {
            method: Method::POST,
            url: self.url("/api/v1/apps", &[])?,
            body: Body::Json(body),
            auth: false,
            idempotent: false,
        };
        self.call_json(req).await
    }

    /// The URL to send the admin to (`/oauth/authorize`), asking [`crate::GUILDHALL_SCOPES`]
    /// (or `scopes`).
    pub fn authorize_url(
        &self,
        app: &RegisteredApp,
        redirect_uri: &str,
        state: &str,
        pkce: Option<&Pkce>,
        scopes: Option<&str>,
    ) -> Result<Url> {
        let scope = scopes.map_or_else(guildhall_scope_string, str::to_owned);
        let mut q = vec![
            ("response_type", "code".to_owned()),
            ("client_id", app.client_id.clone()),
            ("redirect_uri", redirect_uri.to_owned()),
            ("scope", scope),
            ("state", state.to_owned()),
        ];
        if let Some(p) = pkce {
            q.push(("code_challenge", p.challenge.clone()));
            q.push(("code_challenge_method", "S256".to_owned()));
        }
        self.url("/oauth/authorize", &q)
    }

    /// `POST /oauth/token` with the code from the redirect. Returns the token; build a client
    /// for it with [`Client::with_token`].
    pub async fn exchange_code(
        &self,
        app: &RegisteredApp,
        code: &str,
        redirect_uri: &str,
        pkce: Option<&Pkce>,
    ) -> Result<TokenGrant> {
        let mut form = vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".to_owned(), code.to_owned()),
            ("client_id".to_owned(), app.client_id.clone()),
            (
                "client_secret".to_owned(),
                app.client_secret.expose().to_owned(),
            ),
            ("redirect_uri".to_owned(), redirect_uri.to_owned()),
        ];
        if let Some(p) = pkce {
            form.push(("code_verifier".to_owned(), p.verifier.expose().to_owned()));
        }
        let req = Request {
            method: Method::POST,
            url: self.url("/oauth/token", &[])?,
            body: Body::Form(form),
            auth: false,
            idempotent: false,
        };
        self.call_json(req).await
    }

    /// `POST /oauth/revoke` (idempotent on the server).
    pub async fn revoke_token(&self, app: &RegisteredApp, token: &Secret) -> Result<()> {
        let form = vec![
            ("client_id".to_owned(), app.client_id.clone()),
            (
                "client_secret".to_owned(),
                app.client_secret.expose().to_owned(),
            ),
            ("token".to_owned(), token.expose().to_owned()),
        ];
        let req = Request {
            method: Method::POST,
            url: self.url("/oauth/revoke", &[])?,
            body: Body::Form(form),
            auth: false,
            idempotent: true,
        };
        self.call(req).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_example() {
        // RFC 7636 appendix B.
        let p = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(p.challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let a = Pkce::generate().unwrap();
        let b = Pkce::generate().unwrap();
        assert_ne!(a.verifier, b.verifier);
        assert_eq!(a.verifier.expose().len(), 43);
        assert!(!format!("{a:?}").contains(a.verifier.expose()));
    }
}
