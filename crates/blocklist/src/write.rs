//! Writers: Mastodon CSV (what Mastodon's import accepts), FediBlockHole CSV (byte for byte
//! what FediBlockHole writes), JSON (the admin API shape) and the audit CSVs.

use std::io::{self, Write};

use serde::Serialize;
use thiserror::Error;

use crate::merge::{AuditRecord, MergeResult};
use crate::types::BlockEntry;

/// The exact header Mastodon exports and expects on import.
pub const MASTODON_HEADER: &str =
    "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate";

/// A field FediBlockHole cannot export.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown export field {0:?}")]
pub struct UnknownField(pub String);

/// Quotes a CSV field as Python's `csv` (and Ruby's) minimal quoting does.
fn quote(out: &mut String, field: &str) {
    // Byte tests without an early exit (all four are ASCII), which the compiler vectorises:
    // much faster than a `char` pattern. Bit 0: the field needs quotes; bit 1: it has a `"`.
    let flags = field.bytes().fold(0u8, |f, b| {
        f | u8::from(matches!(b, b',' | b'"' | b'\r' | b'\n')) | (u8::from(b == b'"') << 1)
    });
    if flags == 0 {
        out.push_str(field);
        return;
    }
    out.push('"');
    if flags & 2 == 0 {
        out.push_str(field);
    } else {
        for (i, part) in field.split('"').enumerate() {
            if i > 0 {
                out.push_str("\"\"");
            }
            out.push_str(part);
        }
    }
    out.push('"');
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// Checks FediBlockHole export field names (`domain`, `severity`, `public_comment`,
/// `private_comment`, `reject_media`, `reject_reports`, `obfuscate`, `id`).
pub fn check_export_fields(fields: &[String]) -> Result<(), UnknownField> {
    const KNOWN: [&str; 8] = [
        "domain",
        "severity",
        "public_comment",
        "private_comment",
        "reject_media",
        "reject_reports",
        "obfuscate",
        "id",
    ];
    match fields.iter().find(|f| !KNOWN.contains(&f.as_str())) {
        Some(f) => Err(UnknownField(f.clone())),
        None => Ok(()),
    }
}

/// Writes FediBlockHole's CSV: header `domain,severity` plus `extra_fields` (in the order
/// given, duplicates kept, as FediBlockHole's `EXPORT_FIELDS.extend`), rows in the given order
/// (the merge result is sorted by domain), `True`/`False`, CRLF line endings.
pub fn write_fbh_csv(
    w: &mut dyn Write,
    entries: &[BlockEntry],
    extra_fields: &[String],
) -> io::Result<()> {
    let mut fields: Vec<&str> = vec!["domain", "severity"];
    fields.extend(extra_fields.iter().map(String::as_str));
    let mut buf = String::with_capacity(64 * 1024);
    buf.push_str(&fields.join(","));
    buf.push_str("\r\n");
    // The fields by number (not by name for every row); others (`id`) are left empty.
    let cols: Vec<u8> = fields
        .iter()
        .map(|f| match *f {
            "domain" => 0,
            "severity" => 1,
            "public_comment" => 2,
            "private_comment" => 3,
            "reject_media" => 4,
            "reject_reports" => 5,
            "obfuscate" => 6,
            _ => 7,
        })
        .collect();
    for e in entries {
        for (i, f) in cols.iter().enumerate() {
            if i > 0 {
                buf.push(',');
            }
            match *f {
                0 => quote(&mut buf, &e.domain),
                1 => buf.push_str(e.severity.as_str()),
                2 => quote(&mut buf, &e.public_comment),
                3 => quote(&mut buf, &e.private_comment),
                4 => buf.push_str(py_bool(e.reject_media)),
                5 => buf.push_str(py_bool(e.reject_reports)),
                6 => buf.push_str(py_bool(e.obfuscate)),
                _ => {}
            }
        }
        buf.push_str("\r\n");
        if buf.len() > 60 * 1024 {
            w.write_all(buf.as_bytes())?;
            buf.clear();
        }
    }
    w.write_all(buf.as_bytes())
}

/// Writes Mastodon's import CSV: the exact header, `true`/`false`, LF line endings.
pub fn write_mastodon_csv(w: &mut dyn Write, entries: &[BlockEntry]) -> io::Result<()> {
    let mut buf = String::with_capacity(64 * 1024);
    buf.push_str(MASTODON_HEADER);
    buf.push('\n');
    for e in entries {
        quote(&mut buf, &e.domain);
        buf.push(',');
        buf.push_str(e.severity.as_str());
        buf.push_str(if e.reject_media { ",true," } else { ",false," });
        buf.push_str(if e.reject_reports { "true," } else { "false," });
        quote(&mut buf, &e.public_comment);
        buf.push_str(if e.obfuscate { ",true\n" } else { ",false\n" });
        if buf.len() > 60 * 1024 {
            w.write_all(buf.as_bytes())?;
            buf.clear();
        }
    }
    w.write_all(buf.as_bytes())
}

#[derive(Serialize)]
struct JsonBlock<'a> {
    domain: &'a str,
    severity: &'static str,
    reject_media: bool,
    reject_reports: bool,
    public_comment: &'a str,
    private_comment: &'a str,
    obfuscate: bool,
}

/// Writes a JSON array in the shape of Mastodon's admin API (readable back as `json`).
pub fn write_json(w: &mut dyn Write, entries: &[BlockEntry]) -> io::Result<()> {
    let v: Vec<JsonBlock<'_>> = entries
        .iter()
        .map(|e| JsonBlock {
            domain: &e.domain,
            severity: e.severity.as_str(),
            reject_media: e.reject_media,
            reject_reports: e.reject_reports,
            public_comment: &e.public_comment,
            private_comment: &e.private_comment,
            obfuscate: e.obfuscate,
        })
        .collect();
    serde_json::to_writer_pretty(&mut *w, &v).map_err(io::Error::other)?;
    w.write_all(b"\n")
}

/// Formats a float as Python's `repr` does (`100.0`, `12.5`, `33.33333333333333`, `1e-05`).
pub fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Scientific: mantissa as shortest repr, exponent with sign and at least 2 digits.
        let s = format!("{x:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", e.abs());
    }
    let s = format!("{x}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Writes FediBlockHole's audit file (`-b`): `domain,count,percent` for every domain seen,
/// sorted, CRLF.
pub fn write_fbh_audit(w: &mut dyn Write, audit: &[AuditRecord]) -> io::Result<()> {
    let mut buf = String::from("domain,count,percent\r\n");
    for a in audit {
        quote(&mut buf, &a.domain);
        buf.push_str(&format!(",{},{}\r\n", a.count, py_float(a.percent)));
        if buf.len() > 60 * 1024 {
            w.write_all(buf.as_bytes())?;
            buf.clear();
        }
    }
    w.write_all(buf.as_bytes())
}

/// Writes Guildhall's audit CSV: per domain its count, percentage, weighted score, merged
/// severity, outcome and the sources that listed it with their severities
/// (`name=severity;…`). LF line endings.
pub fn write_audit(w: &mut dyn Write, result: &MergeResult) -> io::Result<()> {
    let mut buf = String::from("domain,count,percent,score,severity,outcome,sources\n");
    for a in &result.audit {
        quote(&mut buf, &a.domain);
        buf.push_str(&format!(
            ",{},{},{},{},{},",
            a.count,
            py_float(a.percent),
            py_float(a.score),
            a.severity,
            a.outcome
        ));
        let sources: Vec<String> = a
            .sources
            .iter()
            .map(|m| {
                let name = result
                    .sources
                    .get(m.source())
                    .map_or("?", |s| s.name.as_str());
                format!("{name}={}", m.severity())
            })
            .collect();
        quote(&mut buf, &sources.join(";"));
        buf.push('\n');
        if buf.len() > 60 * 1024 {
            w.write_all(buf.as_bytes())?;
            buf.clear();
        }
    }
    w.write_all(buf.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Severity;

    #[test]
    fn json_and_mastodon_csv_read_back() {
        use crate::read::{read_bytes, Format};
        let entries = vec![
            BlockEntry {
                public_comment: "a, \"b\"".into(),
                private_comment: "p".into(),
                reject_reports: true,
                obfuscate: true,
                ..BlockEntry::new("a.example", Severity::Suspend)
            },
            BlockEntry::new("b.example", Severity::Noop),
        ];
        let mut j = Vec::new();
        write_json(&mut j, &entries).unwrap();
        let back = read_bytes(&j, "j", None);
        assert_eq!(crate::read::detect(&j), Format::AdminJson);
        assert_eq!(back.entries, entries);
        let mut m = Vec::new();
        write_mastodon_csv(&mut m, &entries).unwrap();
        let back = read_bytes(&m, "m", None);
        let mut want = entries.clone();
        want[0].private_comment.clear(); // Mastodon's CSV has no private comment
        assert_eq!(back.entries, want);
    }

    #[test]
    fn audit_csv_names_sources_and_outcomes() {
        use crate::merge::{merge, MergeOptions, SourceOptions, ThresholdType};
        use crate::types::Blocklist;
        let l = |d: &[&str], s| Blocklist {
            entries: d.iter().map(|d| BlockEntry::new(*d, s)).collect(),
            ..Blocklist::default()
        };
        let (a, b) = (
            l(&["x.example", "y.example"], Severity::Suspend),
            l(&["x.example"], Severity::Silence),
        );
        let opts = MergeOptions {
            threshold: 2.0,
            threshold_type: ThresholdType::Count,
            ..MergeOptions::default()
        };
        let r = merge(
            &[(SourceOptions::new("A"), &a), (SourceOptions::new("B"), &b)],
            opts,
            &Default::default(),
        );
        let mut out = Vec::new();
        write_audit(&mut out, &r).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "domain,count,percent,score,severity,outcome,sources\n\
             x.example,2,100.0,1.0,suspend,included,A=suspend;B=silence\n\
             y.example,1,50.0,0.5,suspend,below-threshold,A=suspend\n"
        );
        let mut fbh = Vec::new();
        write_fbh_audit(&mut fbh, &r.audit).unwrap();
        assert_eq!(
            String::from_utf8(fbh).unwrap(),
            "domain,count,percent\r\nx.example,2,100.0\r\ny.example,1,50.0\r\n"
        );
    }

    #[test]
    fn python_float_repr() {
        assert_eq!(py_float(100.0), "100.0");
        assert_eq!(py_float(12.5), "12.5");
        assert_eq!(py_float(1.0 / 3.0 * 100.0), "33.33333333333333");
        assert_eq!(py_float(1e-5), "1e-05");
        assert_eq!(py_float(0.0), "0.0");
    }

    #[test]
    fn writers_quote_and_use_line_endings() {
        let e = BlockEntry {
            public_comment: "spam, \"bots\"".into(),
            reject_media: true,
            ..BlockEntry::new("a.example", Severity::Silence)
        };
        let mut out = Vec::new();
        write_fbh_csv(
            &mut out,
            std::slice::from_ref(&e),
            &["public_comment".into(), "reject_media".into()],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "domain,severity,public_comment,reject_media\r\na.example,silence,\"spam, \"\"bots\"\"\",True\r\n"
        );
        let mut out = Vec::new();
        write_mastodon_csv(&mut out, &[e]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "{MASTODON_HEADER}\na.example,silence,true,false,\"spam, \"\"bots\"\"\",false\n"
            )
        );
        assert!(check_export_fields(&["bogus".into()]).is_err());
        for (field, want) in [
            ("plain é", "plain é"),
            ("a,b", "\"a,b\""),
            ("say \"x\"", "\"say \"\"x\"\"\""),
            ("cr\r", "\"cr\r\""),
            ("lf\n", "\"lf\n\""),
        ] {
            let mut q = String::new();
            quote(&mut q, field);
            assert_eq!(q, want);
        }
        // Every export field, in a given order, `id` empty.
        let mut out = Vec::new();
        let all = [
            "obfuscate",
            "id",
            "private_comment",
            "reject_reports",
            "domain",
            "severity",
        ];
        let all: Vec<String> = all.iter().map(|f| f.to_string()).collect();
        let e = BlockEntry {
            private_comment: "p".into(),
            reject_reports: true,
            ..BlockEntry::new("b.example", Severity::Suspend)
        };
        write_fbh_csv(&mut out, &[e], &all).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "domain,severity,obfuscate,id,private_comment,reject_reports,domain,severity\r\n\
             b.example,suspend,False,,p,True,b.example,suspend\r\n"
        );
    }
}
