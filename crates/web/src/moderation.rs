//! The moderation co-op's pages and JSON API (issue 4): the queue, cases, claims, decisions,
//! second review, and instance admins' view of their cases.
//!
//! Its routes are [`ROUTES`], part of the one [route table](crate::routes::ROUTES); the guard
//! checks each entry's access before [`handler`]'s handlers run.

use axum::routing::{MethodFilter, MethodRouter};

use crate::routes::RouteSpec;
use crate::AppState;

/// Identifies a handler of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {}

/// This module's routes.
pub(crate) static ROUTES: &[RouteSpec] = &[];

/// The handler of one of this module's routes, answering `filter`.
pub(crate) fn handler(id: Route, filter: MethodFilter) -> MethodRouter<AppState> {
    let _ = filter;
    match id {}
}
