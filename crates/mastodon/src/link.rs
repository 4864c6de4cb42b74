//! An RFC 8288 `Link` header parser (not string splitting: order, extra links, parameters and
//! commas inside URLs are all handled).

use url::Url;

/// One link of a `Link` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The target, resolved against the request URL.
    pub target: Url,
    /// The relation types (`rel`, split on whitespace, lower-cased).
    pub rels: Vec<String>,
}

/// Parses a `Link` header value; relative targets are resolved against `base`.
pub fn parse_link_header(value: &str, base: &Url) -> Result<Vec<Link>, String> {
    let mut links = Vec::new();
    let bytes = value.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && (bytes[*i] == b' ' || bytes[*i] == b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        while i < bytes.len() && bytes[i] == b',' {
            i += 1;
            skip_ws(&mut i);
        }
        if i >= bytes.len() {
            break;
        }
        if bytes[i] != b'<' {
            return Err(format!("expected '<' at byte {i}"));
        }
        let end = value[i + 1..]
            .find('>')
            .ok_or_else(|| format!("unterminated '<' at byte {i}"))?;
        let raw = &value[i + 1..i + 1 + end];
        i = i + 1 + end + 1;
        let target = base
            .join(raw.trim())
            .map_err(|e| format!("bad link target {raw:?}: {e}"))?;
        let mut rels = Vec::new();
        // Parameters: ; name[=value|"quoted"] until ',' or end.
        loop {
            skip_ws(&mut i);
            if i >= bytes.len() || bytes[i] == b',' {
                break;
            }
            if bytes[i] != b';' {
                return Err(format!("expected ';' or ',' at byte {i}"));
            }
            i += 1;
            skip_ws(&mut i);
            let start = i;
            while i < bytes.len() && !matches!(bytes[i], b'=' | b';' | b',' | b' ' | b'\t') {
                i += 1;
            }
            let name = value[start..i].to_ascii_lowercase();
            skip_ws(&mut i);
            let mut pval = String::new();
            if i < bytes.len() && bytes[i] == b'=' {
                i += 1;
                skip_ws(&mut i);
                if i < bytes.len() && bytes[i] == b'"' {
                    i += 1;
                    let mut closed = false;
                    while i < bytes.len() {
                        match bytes[i] {
                            b'\\' if i + 1 < bytes.len() => {
                                i += 1;
                                let ch_len = value[i..].chars().next().map_or(1, char::len_utf8);
                                pval.push_str(&value[i..i + ch_len]);
                                i += ch_len;
                            }
                            b'"' => {
                                i += 1;
                                closed = true;
                                break;
                            }
                            _ => {
                                // Take the whole UTF-8 character.
                                let ch_len = value[i..].chars().next().map_or(1, char::len_utf8);
                                pval.push_str(&value[i..i + ch_len]);
                                i += ch_len;
                            }
                        }
                    }
                    if !closed {
                        return Err("unterminated quoted parameter".to_owned());
                    }
                } else {
                    let start = i;
                    while i < bytes.len() && !matches!(bytes[i], b';' | b',' | b' ' | b'\t') {
                        i += 1;
                    }
                    pval.push_str(&value[start..i]);
                }
            }
            if name == "rel" && rels.is_empty() {
                rels = pval
                    .split_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect();
            }
        }
        links.push(Link { target, rels });
    }
    Ok(links)
}

/// The first link with relation `rel`.
pub fn find_rel<'a>(links: &'a [Link], rel: &str) -> Option<&'a Link> {
    links.iter().find(|l| l.rels.iter().any(|r| r == rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://host.example/api/v1/admin/reports").unwrap()
    }

    #[test]
    fn parses_mastodon_links_in_any_order() {
        let h = r#"<https://host.example/api/v1/admin/reports?limit=2&max_id=5>; rel="next", <https://host.example/api/v1/admin/reports?limit=2&min_id=9>; rel="prev""#;
        let links = parse_link_header(h, &base()).unwrap();
        assert_eq!(links.len(), 2);
        let next = find_rel(&links, "next").unwrap();
        assert_eq!(next.target.query(), Some("limit=2&max_id=5"));
        let prev = find_rel(&links, "prev").unwrap();
        assert_eq!(prev.target.query(), Some("limit=2&min_id=9"));

        let reversed = r#"<https://host.example/x?min_id=9>; rel=prev, <https://host.example/x?a=1,2&max_id=5>;rel="next""#;
        let links = parse_link_header(reversed, &base()).unwrap();
        assert_eq!(
            find_rel(&links, "next").unwrap().target.query(),
            Some("a=1,2&max_id=5")
        );
    }

    #[test]
    fn handles_extra_links_params_and_relative_targets() {
        let h = r#"</api/v1/admin/reports?max_id=1>; title="a, b; c"; rel="next last", <https://other.example/>; rel=help"#;
        let links = parse_link_header(h, &base()).unwrap();
        assert_eq!(links.len(), 2);
        let next = find_rel(&links, "next").unwrap();
        assert_eq!(
            next.target.as_str(),
            "https://host.example/api/v1/admin/reports?max_id=1"
        );
        assert!(find_rel(&links, "last").is_some());
        assert!(find_rel(&links, "prev").is_none());
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for h in [
            "nonsense",
            "<https://a.example/",
            "<https://a.example/>; rel=\"next",
            "<https://a.example/> junk",
            "<https://a.example/>; rel=\"\\é",
        ] {
            assert!(parse_link_header(h, &base()).is_err(), "{h}");
        }
        assert!(parse_link_header("", &base()).unwrap().is_empty());
    }
}
