//! Pabulib `.pb` writer.

use crate::model::Election;
use std::io::Write;

/// Quotes a cell when it contains `;`, `"` or a line break (inner quotes doubled).
pub fn quote(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\"")).into()
    } else {
        cell.into()
    }
}

fn row<W: Write>(
    out: &mut W,
    cells: impl IntoIterator<Item = impl AsRef<str>>,
) -> std::io::Result<()> {
    let mut first = true;
    for c in cells {
        if !first {
            out.write_all(b";")?;
        }
        first = false;
        out.write_all(quote(c.as_ref()).as_bytes())?;
    }
    out.write_all(b"\n")
}

/// Writes an election as a `.pb` file: META, PROJECTS and VOTES with `voter_id;vote[;points]`
/// followed by the voter metadata columns.
pub fn write_election<W: Write>(e: &Election, out: &mut W) -> std::io::Result<()> {
    writeln!(out, "META")?;
    writeln!(out, "key;value")?;
    for (k, v) in &e.meta {
        row(out, [k.as_str(), v.as_str()])?;
    }
    writeln!(out, "PROJECTS")?;
    row(out, &e.project_columns)?;
    for p in &e.projects {
        row(out, &p.cells)?;
    }
    writeln!(out, "VOTES")?;
    let has_points = e.voters.iter().any(|v| v.points.is_some()) || e.vote_type.has_points();
    let mut header = vec!["voter_id".to_string(), "vote".to_string()];
    if has_points {
        header.push("points".into());
    }
    header.extend(e.vote_extra_columns.iter().cloned());
    row(out, &header)?;
    let mut cells: Vec<String> = Vec::new();
    for v in &e.voters {
        cells.clear();
        cells.push(v.id.clone());
        let ids: Vec<&str> = v
            .ballot
            .iter()
            .map(|&p| e.projects[p as usize].id.as_str())
            .collect();
        cells.push(ids.join(","));
        if has_points {
            let pts: Vec<String> = v.points.iter().flatten().map(|x| x.to_string()).collect();
            cells.push(pts.join(","));
        }
        cells.extend(v.extra.iter().cloned());
        row(out, &cells)?;
    }
    Ok(())
}
