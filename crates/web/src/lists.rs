//! The shared blocklists' pages and JSON API (issue 6): sources, lists, published feeds,
//! subscriptions, pushes and coordinated defederation.
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
