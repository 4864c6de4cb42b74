//! Reading the features (quotas) CSV and the people CSV in the layout of the PyPI package
//! `sortition-algorithms`, with the settings that say which columns matter.

use std::collections::HashMap;
use std::io::Read;

use crate::Error;

/// The quota of one feature value: how many panel members must have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Fewest panel members with this value.
    pub min: u32,
    /// Most panel members with this value.
    pub max: u32,
    /// The lowest the minimum may be relaxed to (`min_flex`; 0 when absent).
    pub min_flex: u32,
    /// The highest the maximum may be relaxed to (`max_flex`; unbounded when absent).
    pub max_flex: u32,
}

/// One feature (e.g. `gender`) with its values and their quotas, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    /// The feature's name, which is also a column of the people CSV.
    pub name: String,
    /// The values, in file order.
    pub values: Vec<String>,
    /// The quota of each value (same order as `values`).
    pub quotas: Vec<Quota>,
}

/// All features and quotas. A *category* is one (feature, value) pair; categories are
/// numbered feature by feature in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Features {
    /// The features, in order of first appearance in the file.
    pub features: Vec<Feature>,
}

impl Features {
    /// The number of categories (feature values) over all features.
    pub fn num_categories(&self) -> usize {
        self.features.iter().map(|f| f.values.len()).sum()
    }

    /// The category number of value `v` of feature `f`.
    pub fn category(&self, f: usize, v: usize) -> usize {
        self.features[..f]
            .iter()
            .map(|f| f.values.len())
            .sum::<usize>()
            + v
    }

    /// All categories as (feature index, value index), in category order.
    pub fn categories(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (f, feat) in self.features.iter().enumerate() {
            for v in 0..feat.values.len() {
                out.push((f, v));
            }
        }
        out
    }

    /// The quota of each category, in category order.
    pub fn quotas(&self) -> Vec<Quota> {
        self.features
            .iter()
            .flat_map(|f| f.quotas.iter().copied())
            .collect()
    }

    /// A readable label `feature=value` for a category.
    pub fn label(&self, cat: usize) -> String {
        let cats = self.categories();
        let (f, v) = cats[cat];
        format!("{}={}", self.features[f].name, self.features[f].values[v])
    }

    /// Quotas that contradict each other or the panel size, whatever the pool: a feature whose
    /// minimums add up to more than `panel`, or whose maximums add up to less than `panel`.
    pub fn check_panel_size(&self, panel: usize) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.features {
            let min: u64 = f.quotas.iter().map(|q| u64::from(q.min)).sum();
            let max: u64 = f.quotas.iter().map(|q| u64::from(q.max)).sum();
            if min > panel as u64 {
                out.push(format!(
                    "feature {:?}: the minimums add up to {min}, more than the panel of {panel}",
                    f.name
                ));
            }
            if max < panel as u64 {
                out.push(format!(
                    "feature {:?}: the maximums add up to {max}, less than the panel of {panel}",
                    f.name
                ));
            }
        }
        out
    }
}

/// Which columns of the people CSV matter (the `sortition-algorithms` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The column holding each person's unique id (`id_column`).
    pub id_column: String,
    /// Extra columns copied to the selected/remaining CSVs (`columns_to_keep`).
    pub columns_to_keep: Vec<String>,
    /// At most one person per household, a household being the people whose
    /// `check_same_address_columns` are all equal (`check_same_address`).
    pub check_same_address: bool,
    /// The address columns that define a household.
    pub check_same_address_columns: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            id_column: "id".into(),
            columns_to_keep: Vec::new(),
            check_same_address: false,
            check_same_address_columns: Vec::new(),
        }
    }
}

/// One volunteer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The id (value of the id column).
    pub id: String,
    /// The line of the people CSV where this person's record starts.
    pub line: u64,
    /// The value index of each feature (same order as [`Features::features`]).
    pub values: Vec<usize>,
    /// The category of each feature (see [`Features::category`]).
    pub categories: Vec<usize>,
    /// The values of the columns to keep (same order as [`Pool::kept_columns`]).
    pub kept: Vec<String>,
    /// The feature columns' raw text, as read.
    pub feature_text: Vec<String>,
}

/// The pool of volunteers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pool {
    /// The people, in file order (rows with errors left out).
    pub people: Vec<Person>,
    /// Name of the id column.
    pub id_column: String,
    /// Names of the kept columns.
    pub kept_columns: Vec<String>,
    /// Names of the feature columns (same order as the features).
    pub feature_columns: Vec<String>,
    /// Households of two or more people (indices into `people`), when the household rule is on.
    pub households: Vec<Vec<usize>>,
}

/// A problem with one line of an input file; that line is left out, the rest is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The file (as given).
    pub file: String,
    /// The 1-based line number.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

fn find_column(headers: &csv::StringRecord, names: &[&str]) -> Option<usize> {
    headers
        .iter()
        .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
}

fn parse_count(text: &str, what: &str) -> Result<u32, String> {
    let t = text.trim();
    // Some spreadsheets write whole numbers as "3.0".
    let t = t.strip_suffix(".0").unwrap_or(t);
    t.parse::<u32>()
        .map_err(|_| format!("{what} {text:?} is not a whole number ≥ 0"))
}

/// Reads the features CSV (`feature,value,min,max[,min_flex,max_flex]`; the older header names
/// `category,name` are accepted too). Bad lines are reported and left out; a missing required
/// column is an error for the whole file.
pub fn read_features(file: &str, reader: impl Read) -> Result<(Features, Vec<LineError>), Error> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = rdr
        .headers()
        .map_err(|e| Error::Csv {
            file: file.into(),
            line: 1,
            message: e.to_string(),
        })?
        .clone();
    let col = |names: &[&str]| find_column(&headers, names);
    let (Some(c_feat), Some(c_val), Some(c_min), Some(c_max)) = (
        col(&["feature", "category"]),
        col(&["value", "name"]),
        col(&["min"]),
        col(&["max"]),
    ) else {
        return Err(Error::Header {
            file: file.into(),
            message: format!(
                "needs the columns feature,value,min,max (found: {})",
                headers.iter().collect::<Vec<_>>().join(",")
            ),
        });
    };
    let c_min_flex = col(&["min_flex"]);
    let c_max_flex = col(&["max_flex"]);
    let mut features = Features::default();
    let mut errors = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                errors.push(LineError {
                    file: file.into(),
                    line,
                    message: e.to_string(),
                });
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        if record.iter().all(|f| f.is_empty()) {
            continue;
        }
        let mut err = |message: String| {
            errors.push(LineError {
                file: file.into(),
                line,
                message,
            })
        };
        let get = |c: usize| record.get(c).unwrap_or("");
        let (fname, vname) = (get(c_feat), get(c_val));
        if fname.is_empty() || vname.is_empty() {
            err("the feature or the value is empty".into());
            continue;
        }
        let parsed = (|| -> Result<Quota, String> {
            let min = parse_count(get(c_min), "min")?;
            let max = parse_count(get(c_max), "max")?;
            let min_flex = match c_min_flex.map(get) {
                Some(t) if !t.is_empty() => parse_count(t, "min_flex")?,
                _ => 0,
            };
            let max_flex = match c_max_flex.map(get) {
                Some(t) if !t.is_empty() => parse_count(t, "max_flex")?,
                _ => u32::MAX,
            };
            if min > max {
                return Err(format!("contradictory quota: min {min} > max {max}"));
            }
            if min_flex > min {
                return Err(format!("min_flex {min_flex} is above min {min}"));
            }
            if max_flex < max {
                return Err(format!("max_flex {max_flex} is below max {max}"));
            }
            Ok(Quota {
                min,
                max,
                min_flex,
                max_flex,
            })
        })();
        let quota = match parsed {
            Ok(q) => q,
            Err(m) => {
                err(format!("{fname}={vname}: {m}"));
                continue;
            }
        };
        let fi = match features.features.iter().position(|f| f.name == fname) {
            Some(i) => i,
            None => {
                features.features.push(Feature {
                    name: fname.into(),
                    values: Vec::new(),
                    quotas: Vec::new(),
                });
                features.features.len() - 1
            }
        };
        let feat = &mut features.features[fi];
        if feat.values.iter().any(|v| v == vname) {
            err(format!("{fname}={vname} appears twice"));
            continue;
        }
        feat.values.push(vname.into());
        feat.quotas.push(quota);
    }
    if features.features.is_empty() && errors.is_empty() {
        return Err(Error::Header {
            file: file.into(),
            message: "no features".into(),
        });
    }
    Ok((features, errors))
}

/// Reads the people CSV: one row per volunteer, with the id column, one column per feature,
/// and the columns to keep. Rows with an empty or repeated id, a missing feature value or a
/// value not in the features CSV are reported by line and left out; the rest is kept.
pub fn read_people(
    file: &str,
    reader: impl Read,
    features: &Features,
    settings: &Settings,
) -> Result<(Pool, Vec<LineError>), Error> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = rdr
        .headers()
        .map_err(|e| Error::Csv {
            file: file.into(),
            line: 1,
            message: e.to_string(),
        })?
        .clone();
    let must = |name: &str| {
        find_column(&headers, &[name]).ok_or_else(|| Error::Header {
            file: file.into(),
            message: format!(
                "no column {name:?} (found: {})",
                headers.iter().collect::<Vec<_>>().join(",")
            ),
        })
    };
    let c_id = must(&settings.id_column)?;
    let c_feat = features
        .features
        .iter()
        .map(|f| must(&f.name))
        .collect::<Result<Vec<_>, _>>()?;
    let c_keep = settings
        .columns_to_keep
        .iter()
        .map(|c| must(c))
        .collect::<Result<Vec<_>, _>>()?;
    let c_addr = if settings.check_same_address {
        if settings.check_same_address_columns.is_empty() {
            return Err(Error::Header {
                file: file.into(),
                message: "the household rule needs at least one address column".into(),
            });
        }
        settings
            .check_same_address_columns
            .iter()
            .map(|c| must(c))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let lookup: Vec<HashMap<&str, usize>> = features
        .features
        .iter()
        .map(|f| {
            f.values
                .iter()
                .enumerate()
                .map(|(i, v)| (v.as_str(), i))
                .collect()
        })
        .collect();
    let mut pool = Pool {
        id_column: settings.id_column.clone(),
        kept_columns: settings.columns_to_keep.clone(),
        feature_columns: features.features.iter().map(|f| f.name.clone()).collect(),
        ..Pool::default()
    };
    let mut errors = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut addresses: HashMap<String, Vec<usize>> = HashMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                errors.push(LineError {
                    file: file.into(),
                    line,
                    message: e.to_string(),
                });
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        if record.iter().all(|f| f.is_empty()) {
            continue;
        }
        let get = |c: usize| record.get(c).unwrap_or("");
        let mut problems = Vec::new();
        let id = get(c_id);
        if id.is_empty() {
            problems.push(format!("empty {:?}", settings.id_column));
        } else if let Some(first) = seen.get(id) {
            problems.push(format!("id {id:?} repeats line {first}"));
        }
        let mut values = Vec::with_capacity(c_feat.len());
        for (fi, &c) in c_feat.iter().enumerate() {
            let text = get(c);
            let name = &features.features[fi].name;
            if text.is_empty() {
                problems.push(format!("missing value for feature {name:?}"));
            } else if let Some(&v) = lookup[fi].get(text) {
                values.push(v);
            } else {
                problems.push(format!(
                    "unknown value {text:?} for feature {name:?} (known: {})",
                    features.features[fi].values.join(", ")
                ));
            }
        }
        if !problems.is_empty() {
            errors.push(LineError {
                file: file.into(),
                line,
                message: problems.join("; "),
            });
            continue;
        }
        seen.insert(id.into(), line);
        let idx = pool.people.len();
        if !c_addr.is_empty() {
            let parts: Vec<String> = c_addr.iter().map(|&c| get(c).to_lowercase()).collect();
            if parts.iter().any(|p| !p.is_empty()) {
                addresses.entry(parts.join("\u{1f}")).or_default().push(idx);
            }
        }
        pool.people.push(Person {
            id: id.into(),
            line,
            categories: values
                .iter()
                .enumerate()
                .map(|(f, &v)| features.category(f, v))
                .collect(),
            values,
            kept: c_keep.iter().map(|&c| get(c).to_string()).collect(),
            feature_text: c_feat.iter().map(|&c| get(c).to_string()).collect(),
        });
    }
    let mut households: Vec<Vec<usize>> = addresses.into_values().filter(|h| h.len() > 1).collect();
    households.sort();
    pool.households = households;
    Ok((pool, errors))
}
