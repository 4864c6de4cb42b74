//! Small helpers for dynamic SQL on both backends.

/// A bound value of a dynamically built statement.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    I(i64),
    S(String),
}

/// Binds every [`Param`] in order to a query (inside `on_pool!`/`on_tx!`, where the query's
/// backend is known).
macro_rules! bind_params {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                $crate::sql::Param::I(v) => q.bind(*v),
                $crate::sql::Param::S(s) => q.bind(s.clone()),
            };
        }
        q
    }};
}
pub(crate) use bind_params;

/// Collects parameters and hands out their `$n` placeholders.
#[derive(Debug, Default)]
pub(crate) struct Params(pub Vec<Param>);

impl Params {
    pub fn int(&mut self, v: i64) -> String {
        self.0.push(Param::I(v));
        format!("${}", self.0.len())
    }
    pub fn text(&mut self, v: impl Into<String>) -> String {
        self.0.push(Param::S(v.into()));
        format!("${}", self.0.len())
    }
}

/// Parses a stored enumerated value, naming the column when it is wrong.
pub(crate) fn stored<T: std::str::FromStr<Err = String>>(
    column: &'static str,
    s: &str,
) -> Result<T, guildhall_db::DbError> {
    s.parse()
        .map_err(|e| guildhall_db::DbError::Corrupt(format!("{column}: {e}")))
}

/// Parses stored JSON, naming the column when it is wrong.
pub(crate) fn stored_json<T: serde::de::DeserializeOwned>(
    column: &'static str,
    s: &str,
) -> Result<T, guildhall_db::DbError> {
    serde_json::from_str(s).map_err(|e| guildhall_db::DbError::Corrupt(format!("{column}: {e}")))
}

/// JSON text of a value.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}
