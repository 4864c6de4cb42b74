//! Request bodies: HTML forms and JSON objects read into one [`Fields`] map, so that pages and
//! the JSON API validate the same way and every refusal names its field.

use std::collections::HashMap;
use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;

use crate::error::AppError;
use crate::AppState;

/// How a body was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json`.
    Json,
    /// `multipart/form-data` (a form with a file; upload routes only).
    Multipart,
    /// No body.
    Empty,
}

/// The fields of a request body: name → values (a form may repeat a name, a JSON member may be
/// an array of strings).
#[derive(Debug, Clone)]
pub struct Fields {
    map: HashMap<String, Vec<String>>,
    /// Field → the file name sent with it (multipart file parts).
    files: HashMap<String, String>,
    /// How the body was encoded.
    pub encoding: Encoding,
}

impl Fields {
    /// An empty set of fields.
    pub fn empty() -> Fields {
        Fields {
            map: HashMap::new(),
            files: HashMap::new(),
            encoding: Encoding::Empty,
        }
    }

    /// Parses an `application/x-www-form-urlencoded` body. A body that is not UTF-8 or has a
    /// broken percent-escape is refused, naming the field where it happened.
    pub fn from_form(body: &[u8]) -> Result<Fields, AppError> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (i, pair) in body.split(|b| *b == b'&').enumerate() {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(p) => (&pair[..p], &pair[p + 1..]),
                None => (pair, &b""[..]),
            };
            let key = decode_component(k).map_err(|m| AppError::Malformed {
                code: "malformed_form",
                message: format!("form pair {}: the field name {m}", i + 1),
                field: "body".to_owned(),
            })?;
            let value = decode_component(v).map_err(|m| AppError::Malformed {
                code: "malformed_form",
                message: format!("form field {key:?}: the value {m}"),
                field: key.clone(),
            })?;
            map.entry(key).or_default().push(value);
        }
        Ok(Fields {
            map,
            files: HashMap::new(),
            encoding: Encoding::Form,
        })
    }

    /// Parses a JSON object. Members may be strings, numbers, booleans, null (= absent) or
    /// arrays of strings; anything else is refused naming the member.
    pub fn from_json(body: &[u8]) -> Result<Fields, AppError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| AppError::Malformed {
                code: "malformed_json",
                message: format!("the body is not valid JSON: {e}"),
                field: "body".to_owned(),
            })?;
        let serde_json::Value::Object(obj) = value else {
            return Err(AppError::Malformed {
                code: "malformed_json",
                message: "the body must be a JSON object".to_owned(),
                field: "body".to_owned(),
            });
        };
        let mut map = HashMap::new();
        for (k, v) in obj {
            let values = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => vec![s],
                serde_json::Value::Number(n) => vec![n.to_string()],
                serde_json::Value::Bool(b) => vec![b.to_string()],
                serde_json::Value::Array(items) => {
                    let mut out = Vec::new();
                    for item in items {
                        match item {
                            serde_json::Value::String(s) => out.push(s),
                            _ => return Err(AppError::invalid(&k, "must be an array of strings")),
                        }
                    }
                    out
                }
                serde_json::Value::Object(_) => {
                    return Err(AppError::invalid(&k, "must not be an object"))
                }
            };
            map.insert(k, values);
        }
        Ok(Fields {
            map,
            files: HashMap::new(),
            encoding: Encoding::Json,
        })
    }

    /// Fields from the parts of a `multipart/form-data` body: each part's text under its name,
    /// and a file part's file name ([`Fields::file_name`]). A part that is not UTF-8 text is
    /// refused naming its field; a file input left empty (no file chosen) counts as absent.
    pub fn from_multipart(parts: Vec<(String, Option<String>, Bytes)>) -> Result<Fields, AppError> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        let mut files = HashMap::new();
        for (i, (name, file, data)) in parts.into_iter().enumerate() {
            if name.is_empty() {
                return Err(AppError::Malformed {
                    code: "malformed_multipart",
                    message: format!("part {} has no field name", i + 1),
                    field: "body".to_owned(),
                });
            }
            if file.as_deref() == Some("") && data.is_empty() {
                continue;
            }
            let text = String::from_utf8(data.to_vec()).map_err(|e| {
                AppError::invalid(
                    &name,
                    format!(
                        "is not UTF-8 text (invalid byte at offset {}); save the file as UTF-8",
                        e.utf8_error().valid_up_to()
                    ),
                )
            })?;
            if let Some(f) = file.filter(|f| !f.is_empty()) {
                files.insert(name.clone(), f);
            }
            map.entry(name).or_default().push(text);
        }
        Ok(Fields {
            map,
            files,
            encoding: Encoding::Multipart,
        })
    }

    /// The file name sent with a file field (multipart), if any.
    pub fn file_name(&self, name: &str) -> Option<&str> {
        self.files.get(name).map(String::as_str)
    }

    /// Parses a body by its content type. An empty body is an empty set of fields.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Fields, AppError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields::empty());
        }
        let ct = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        match ct.as_deref() {
            Some("application/json") => Fields::from_json(body),
            Some("application/x-www-form-urlencoded") => Fields::from_form(body),
            _ => Err(AppError::UnsupportedMediaType),
        }
    }

    /// The first value of a field, if present (empty strings count as absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map
            .get(name)
            .and_then(|v| v.first())
            .map(|s| s.as_str())
            .filter(|s| !s.trim().is_empty())
    }

    /// Every value of a field.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.map
            .get(name)
            .map(|v| v.iter().map(|s| s.as_str()).collect())
            .unwrap_or_default()
    }

    /// A required field: `invalid_input` naming it when missing or empty.
    pub fn required(&self, name: &str) -> Result<&str, AppError> {
        self.get(name)
            .ok_or_else(|| AppError::invalid(name, "is required"))
    }

    /// A required field parsed into a domain type; the parse error names the field.
    pub fn parse_required<T>(&self, name: &str) -> Result<T, AppError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.required(name)?
            .parse()
            .map_err(|e: T::Err| AppError::invalid(name, e.to_string()))
    }

    /// An optional field parsed into a domain type.
    pub fn parse_optional<T>(&self, name: &str) -> Result<Option<T>, AppError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|s| {
                s.parse()
                    .map_err(|e: T::Err| AppError::invalid(name, e.to_string()))
            })
            .transpose()
    }
}

/// Percent-decodes one form component (`+` is a space). Errors say what was wrong.
fn decode_component(raw: &[u8]) -> Result<String, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or("has a truncated %-escape")?;
                let s = std::str::from_utf8(hex).map_err(|_| "has a bad %-escape")?;
                let b = u8::from_str_radix(s, 16).map_err(|_| "has a bad %-escape")?;
                out.push(b);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "is not valid UTF-8".to_owned())
}

/// Whether a content type is `multipart/form-data`.
pub(crate) fn is_multipart(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("multipart/form-data"))
}

/// Parses a `multipart/form-data` body that was already read within the route's limit into
/// fields ([`Fields::from_multipart`]); `multer` (what axum's own reader uses) sets no limit
/// of its own.
pub(crate) async fn parse_multipart(content_type: &str, body: Bytes) -> Result<Fields, AppError> {
    let malformed = |field: &str, message: String| AppError::Malformed {
        code: "malformed_multipart",
        message,
        field: field.to_owned(),
    };
    let boundary = multer::parse_boundary(content_type).map_err(|e| {
        malformed(
            "body",
            format!("the multipart body cannot be read ({e}): check its boundary"),
        )
    })?;
    let whole = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(whole, boundary);
    let mut parts = Vec::new();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Err(malformed(
                    "body",
                    format!("the multipart body is malformed: {e}"),
                ))
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        let file = field.file_name().map(str::to_owned);
        let data = field
            .bytes()
            .await
            .map_err(|e| malformed(&name, format!("part {name:?} is malformed: {e}")))?;
        parts.push((name, file, data));
    }
    Fields::from_multipart(parts)
}

/// Reads a whole body, refusing one over `limit` bytes with 413.
pub(crate) async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, AppError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // `to_bytes` fails on the length limit or on a broken connection.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return AppError::PayloadTooLarge(limit);
            }
            source = s.source();
        }
        if e.to_string().contains("length limit") {
            AppError::PayloadTooLarge(limit)
        } else {
            AppError::invalid("body", format!("the body could not be read: {e}"))
        }
    })
}

/// The parsed body of a request (extractor). Behind the guard (every route of the table) this
/// is the body the guard already read within the route's own limit; elsewhere it reads at most
/// the configured body limit.
#[derive(Debug, Clone)]
pub struct Input(pub Fields);

impl FromRequest<AppState> for Input {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(parsed) = req.extensions().get::<crate::auth::ParsedBody>() {
            return Ok(Input(parsed.0.clone()));
        }
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_body(req.into_body(), state.config.body_limit).await?;
        Ok(Input(Fields::parse(ct.as_deref(), &bytes)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_name_bad_fields() {
        let f = Fields::from_form(b"email=a%40b.example&name=A+B&scope=read&scope=write").unwrap();
        assert_eq!(f.get("email"), Some("a@b.example"));
        assert_eq!(f.get("name"), Some("A B"));
        assert_eq!(f.all("scope"), vec!["read", "write"]);
        let err = Fields::from_form(b"email=%ZZ").unwrap_err();
        assert_eq!(err.body().field.as_deref(), Some("email"));
        let err = Fields::from_form(b"email=%FF%FE").unwrap_err();
        assert_eq!(err.code(), "malformed_form");
        let err = Fields::from_form(b"a=1")
            .unwrap()
            .required("email")
            .unwrap_err();
        assert_eq!(err.body().field.as_deref(), Some("email"));
    }

    #[test]
    fn json_is_an_object_of_simple_values() {
        let f = Fields::from_json(br#"{"name":"X","n":3,"scopes":["read"],"d":null}"#).unwrap();
        assert_eq!(f.get("name"), Some("X"));
        assert_eq!(f.get("n"), Some("3"));
        assert_eq!(f.all("scopes"), vec!["read"]);
        assert_eq!(f.get("d"), None);
        assert_eq!(
            Fields::from_json(b"{").unwrap_err().code(),
            "malformed_json"
        );
        assert_eq!(
            Fields::from_json(b"[1]").unwrap_err().code(),
            "malformed_json"
        );
        let err = Fields::from_json(br#"{"o":{}}"#).unwrap_err();
        assert_eq!(err.body().field.as_deref(), Some("o"));
    }
}
