//! The OpenAPI 3.1 document of the JSON API, generated from the [route table](crate::routes)
//! so that it describes every `/api/v1` route and nothing else.

use axum::Json;
use serde_json::{json, Map, Value};

use crate::auth::Access;
use crate::routes::{FieldType, RouteSpec, Surface, ROUTES};

fn field_schema(ty: FieldType) -> Value {
    match ty {
        FieldType::Text => json!({ "type": "string" }),
        FieldType::OneOf(values) => json!({ "type": "string", "enum": values }),
        FieldType::ManyOf(values) => json!({
            "type": "array",
            "items": { "type": "string", "enum": values }
        }),
    }
}

/// Path parameters that are text; every other one is an id (an integer).
const TEXT_PARAMS: &[&str] = &["token", "domain"];

/// The operation's id: the route id without its `Api` prefix, a feature's name first
/// (`Lists(ApiSources)` → `ListsSources`).
fn operation_id(spec: &RouteSpec) -> String {
    let debug = format!("{:?}", spec.id);
    match debug.split_once('(') {
        Some((feature, inner)) => format!(
            "{feature}{}",
            inner.trim_end_matches(')').trim_start_matches("Api")
        ),
        None => debug.trim_start_matches("Api").to_owned(),
    }
}

fn operation(spec: &RouteSpec) -> Value {
    let mut op = Map::new();
    op.insert("summary".into(), json!(spec.summary));
    op.insert("operationId".into(), json!(operation_id(spec)));
    let params: Vec<Value> = spec
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            json!({
                "name": name, "in": "path", "required": true,
                "schema": if TEXT_PARAMS.contains(&name) { json!({"type": "string"}) } else { json!({"type": "integer", "format": "int64"}) }
            })
        })
        .chain(
            (spec.path == "/api/v1/jobs")
                .then(|| {
                    json!({"name": "state", "in": "query", "required": false,
                       "schema": {"type": "string", "enum": ["queued", "running", "done", "dead"]}})
                }),
        )
        .collect();
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }
    if !spec.fields.is_empty() {
        let mut props = Map::new();
        let mut required = Vec::new();
        for f in spec.fields {
            props.insert(f.name.into(), field_schema(f.ty));
            if f.required {
                required.push(f.name);
            }
        }
        op.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "content": { "application/json": { "schema": {
                    "type": "object", "properties": props, "required": required
                }}}
            }),
        );
    }
    let access = match spec.access {
        Access::Public | Access::Setup => "anyone".to_owned(),
        Access::Account(s) => format!("any account; token scope `{s}`"),
        Access::Site(s) => format!("site administrators; token scope `{s}`"),
        Access::Org(p) => format!(
            "members of the organisation whose role allows `{p:?}`; token scope `{}`",
            p.scope()
        ),
    };
    op.insert("description".into(), json!(format!("Who may: {access}.")));
    let err = json!({ "$ref": "#/components/responses/Error" });
    op.insert(
        "responses".into(),
        json!({
            "200": { "description": "OK", "content": { "application/json": { "schema": {} } } },
            "400": err, "401": err, "403": err, "404": err, "409": err, "413": err
        }),
    );
    Value::Object(op)
}

/// The OpenAPI document.
pub fn spec() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in ROUTES.iter().filter(|r| r.surface == Surface::Api) {
        let entry = paths
            .entry(r.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(r.method.as_str().to_ascii_lowercase(), operation(r));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Guildhall API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Authenticate with `Authorization: Bearer <API token>` (create one on the API tokens page). Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`."
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": { "Error": {
                "description": "An error with a stable code",
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "properties": { "error": {
                        "type": "object",
                        "properties": {
                            "code": { "type": "string" },
                            "message": { "type": "string" },
                            "field": { "type": "string" }
                        },
                        "required": ["code", "message"]
                    }},
                    "required": ["error"]
                }}}
            }}
        }
    })
}

/// `GET /api/openapi.json`.
pub(crate) async fn document() -> Json<Value> {
    Json(spec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_is_documented() {
        let doc = spec();
        for r in ROUTES.iter().filter(|r| r.surface == Surface::Api) {
            let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
            assert!(op.is_object(), "{} {} missing", r.method, r.path);
            for f in r.fields {
                assert!(
                    op["requestBody"]["content"]["application/json"]["schema"]["properties"]
                        [f.name]
                        .is_object(),
                    "{} {} field {}",
                    r.method,
                    r.path,
                    f.name
                );
            }
        }
        assert!(doc["paths"].get("/login").is_none());
    }

    #[test]
    fn operation_ids_are_unique_identifiers() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES.iter().filter(|r| r.surface == Surface::Api) {
            let id = operation_id(r);
            assert!(
                !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()),
                "{id}"
            );
            assert!(seen.insert(id.clone()), "{id} twice");
        }
        assert!(seen.contains("Me"), "core ids keep their names");
    }
}
