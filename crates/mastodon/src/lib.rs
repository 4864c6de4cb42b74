//! Guildhall's client for the Mastodon admin API of member instances.
//!
//! - [`Client`]: a typed async client (reqwest + rustls) for credentials checks, instance
//!   information, admin reports, accounts and account actions, domain blocks and allows,
//!   the public domain-block list, measures, and the OAuth app flow. Every request has a
//!   timeout; `X-RateLimit-*` headers are honoured before the limit is hit; 429 and 5xx are
//!   retried with backoff; response bodies are capped; every failure is a typed [`Error`].
//! - [`net`]: the outbound guard ([`Outbound::PublicOnly`]) that keeps user-typed URLs off
//!   loopback, private and link-local addresses.
//! - [`webhook`]: `X-Hub-Signature` verification and `report.*` payload parsing.
//! - [`access`]: the scopes Guildhall asks for ([`GUILDHALL_SCOPES`]), role permissions,
//!   and a plain-words [`AccessReport`] of what a token lacks.
//!
//! The ground truth is `shared/reference/mastodon-api.md`; GoToSocial's and Akkoma's
//! differences are tolerated by the models.

pub mod access;
mod api;
mod client;
pub mod error;
pub mod link;
pub mod models;
pub mod net;
mod oauth;
mod secret;
pub mod webhook;

pub use access::{AccessReport, Area, Capability, Grant, Permissions, GUILDHALL_SCOPES};
pub use client::{parse_base_url, Client, ClientConfig, Page, RateLimit};
pub use error::{Error, Result};
pub use net::Outbound;
pub use oauth::{random_token, Pkce};
pub use secret::Secret;
