//! Domain normalisation (as Mastodon stores domains), canary detection and digests.

use std::borrow::Cow;

use sha2::{Digest, Sha256};
use thiserror::Error;

/// Why a domain string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// Nothing left after trimming.
    #[error("empty domain")]
    Empty,
    /// A character that cannot be in a host name.
    #[error("invalid character {0:?} in domain {1:?}")]
    BadChar(char, String),
    /// An empty label (`a..b`) or one longer than 63 bytes.
    #[error("invalid label in domain {0:?}")]
    BadLabel(String),
    /// Longer than 253 bytes.
    #[error("domain too long ({0} bytes)")]
    TooLong(usize),
    /// IDNA conversion failed.
    #[error("invalid internationalised domain {0:?}")]
    Idna(String),
}

/// A normalised domain and what normalisation noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The canonical form: lower case, IDNA ASCII (A-labels), no trailing or leading dot.
    pub domain: String,
    /// The input had leading dots (`.tk`): Mastodon's handling is unknown, review it.
    pub had_leading_dot: bool,
    /// The input contained `*`: an obfuscated domain, never to be merged as a domain.
    pub obfuscated: bool,
    /// The canonical form differs from the input string (case, IDNA, whitespace, dots).
    pub changed: bool,
}

/// Normalises a domain as Mastodon does before storing it: trims whitespace and trailing `/`,
/// lower-cases, converts Unicode labels to punycode (IDNA to-ASCII), drops one trailing dot.
/// Leading dots are removed too (and reported). A domain containing `*` is returned lower-cased
/// and flagged `obfuscated` without further checks.
pub fn normalize_domain(raw: &str) -> Result<Normalized, DomainError> {
    let n = normalize_domain_ref(raw)?;
    Ok(Normalized {
        domain: n.domain.into_owned(),
        had_leading_dot: n.had_leading_dot,
        obfuscated: n.obfuscated,
        changed: n.changed,
    })
}

/// [`Normalized`] borrowing the input when it is already canonical.
pub(crate) struct NormalizedRef<'a> {
    pub domain: Cow<'a, str>,
    pub had_leading_dot: bool,
    pub obfuscated: bool,
    pub changed: bool,
}

/// [`normalize_domain`] without allocating when the input is already canonical (the vast
/// majority of real rows: lower-case ASCII letters, digits, `-`, `_`, dots, no `xn--`).
pub(crate) fn normalize_domain_ref(raw: &str) -> Result<NormalizedRef<'_>, DomainError> {
    // Fast path: already canonical.
    let b = raw.as_bytes();
    if !b.is_empty() && b[0] != b'.' && b[b.len() - 1] != b'.' && canonical_labels(b) {
        return Ok(NormalizedRef {
            domain: Cow::Borrowed(raw),
            had_leading_dot: false,
            obfuscated: false,
            changed: false,
        });
    }
    let n = normalize_slow(raw)?;
    Ok(NormalizedRef {
        domain: Cow::Owned(n.domain),
        had_leading_dot: n.had_leading_dot,
        obfuscated: n.obfuscated,
        changed: n.changed,
    })
}

/// Every byte `[a-z0-9_.-]`, no empty label, no `xn--`, at most 63 bytes (so every label is
/// 1..=63 bytes; the caller has checked that the first and last bytes are not dots; longer
/// domains take the slow path). Checked over 17-byte windows (see [`scan_window`]) taken
/// straight from the input, or, for a domain of at most 16 bytes, built in registers from
/// two overlapping 8-byte loads and padded with letters (no copy through memory).
fn canonical_labels(b: &[u8]) -> bool {
    let n = b.len();
    if n > 63 {
        return false;
    }
    let mut acc = [0u8; 3];
    if n >= 17 {
        for s in (0..n - 1).step_by(16) {
            let s = s.min(n - 17);
            if let Some(win) = b.get(s..s + 17).and_then(|w| <&[u8; 17]>::try_from(w).ok()) {
                scan_window(win, &mut acc);
            }
        }
        // The last byte is only ever the second of a pair above.
        if !b.last().is_some_and(|&c| host_byte(c)) {
            return false;
        }
    } else {
        const A: u64 = 0x0101_0101_0101_0101 * b'a' as u64;
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let (lo, hi) = if n >= 8 {
            // Bytes 8..n of the domain, then letters.
            let top = word(n - 8).checked_shr(8 * (16 - n) as u32).unwrap_or(0);
            let pad = A.checked_shl(8 * (n - 8) as u32).unwrap_or(0);
            (word(0), top | pad)
        } else {
            let mut lo = A;
            for (i, &c) in b.iter().enumerate() {
                lo = (lo & !(0xff << (8 * i))) | (u64::from(c) << (8 * i));
            }
            (lo, A)
        };
        let mut win = [b'a'; 17];
        win[..8].copy_from_slice(&lo.to_le_bytes());
        win[8..16].copy_from_slice(&hi.to_le_bytes());
        scan_window(&win, &mut acc);
    }
    let [bad, dots, dashes] = acc;
    if bad | dots != 0 {
        return false;
    }
    dashes == 0 || !b.windows(4).any(|x| x == b"xn--")
}

/// `[a-z0-9_.-]`.
#[inline(always)]
fn host_byte(c: u8) -> bool {
    (c.wrapping_sub(b'a') < 26)
        | (c.wrapping_sub(b'0') < 10)
        | (c == b'_')
        | (c == b'.')
        | (c == b'-')
}

/// For each of the first 16 bytes of `win` (the compiler turns this into vector compares):
/// OR into `acc` whether it is not a host byte, and whether it and the byte after it are two
/// dots (an empty label) or two dashes (only then is `xn--` looked for).
#[inline(always)]
fn scan_window(win: &[u8; 17], acc: &mut [u8; 3]) {
    for k in 0..16 {
        let (c, d) = (win[k], win[k + 1]);
        acc[0] |= u8::from(!host_byte(c));
        acc[1] |= u8::from((c == b'.') & (d == b'.'));
        acc[2] |= u8::from((c == b'-') & (d == b'-'));
    }
}

fn normalize_slow(raw: &str) -> Result<Normalized, DomainError> {
    let trimmed = raw.trim().trim_end_matches('/').trim();
    if trimmed.is_empty() {
        return Err(DomainError::Empty);
    }
    if trimmed.contains('*') {
        let d = trimmed.to_lowercase();
        return Ok(Normalized {
            changed: d != raw,
            domain: d,
            had_leading_dot: false,
            obfuscated: true,
        });
    }
    let mut s = trimmed.strip_suffix('.').unwrap_or(trimmed);
    let had_leading_dot = s.starts_with('.');
    s = s.trim_start_matches('.');
    if s.is_empty() {
        return Err(DomainError::Empty);
    }
    let needs_idna = !s.is_ascii() || s.contains("xn--") || s.contains("XN--");
    let domain = if needs_idna {
        let a = idna::domain_to_ascii(s).map_err(|_| DomainError::Idna(s.to_string()))?;
        // A-labels must decode back cleanly, otherwise the punycode was bogus.
        let (_, res) = idna::domain_to_unicode(&a);
        if res.is_err() {
            return Err(DomainError::Idna(s.to_string()));
        }
        a
    } else {
        s.to_ascii_lowercase()
    };
    validate_ascii(&domain)?;
    Ok(Normalized {
        changed: domain != raw,
        domain,
        had_leading_dot,
        obfuscated: false,
    })
}

fn validate_ascii(d: &str) -> Result<(), DomainError> {
    if d.len() > 253 {
        return Err(DomainError::TooLong(d.len()));
    }
    for c in d.chars() {
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.') {
            return Err(DomainError::BadChar(c, d.to_string()));
        }
    }
    if d.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err(DomainError::BadLabel(d.to_string()));
    }
    Ok(())
}

/// Is this (normalised) domain a canary/sentinel row meant to be stripped before merging?
/// `*.invalid`, `canary.*.example.com`, and the `000…` instruction rows of Seirdy's and
/// Oliphant's lists.
pub fn is_canary(d: &str) -> bool {
    d == "invalid"
        || d.ends_with(".invalid")
        || (d.starts_with("canary.") && d.ends_with(".example.com"))
        || (d.starts_with("000") && (d.ends_with(".example.com") || d.ends_with("seirdy.one")))
}

/// The lower-case hex SHA-256 of a domain, as Mastodon's public API `digest` field.
pub fn digest(domain: &str) -> String {
    let h = Sha256::digest(domain.as_bytes());
    let mut s = String::with_capacity(64);
    for b in h {
        s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    s
}

/// The parents of a domain, nearest first: `a.b.example.com` → `b.example.com`,
/// `example.com`, `com`.
pub fn parents(d: &str) -> impl Iterator<Item = &str> {
    d.match_indices('.').map(move |(i, _)| &d[i + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_dots_space_and_idna() {
        let n = normalize_domain("  Example.COM. ").unwrap();
        assert_eq!(n.domain, "example.com");
        assert!(n.changed);
        let u = normalize_domain("bücher.example").unwrap();
        let p = normalize_domain("XN--BCHER-KVA.example").unwrap();
        assert_eq!(u.domain, "xn--bcher-kva.example");
        assert_eq!(u.domain, p.domain);
        let l = normalize_domain(".tk").unwrap();
        assert_eq!(l.domain, "tk");
        assert!(l.had_leading_dot);
        assert_eq!(
            normalize_domain("a.example.com/").unwrap().domain,
            "a.example.com"
        );
        assert!(
            !normalize_domain("xn--p1abe3d.xn--80asehdb")
                .unwrap()
                .changed
        );
    }

    #[test]
    fn rejects_bad_domains() {
        assert_eq!(normalize_domain("   "), Err(DomainError::Empty));
        assert!(matches!(
            normalize_domain("exa mple.com"),
            Err(DomainError::BadChar(' ', _))
        ));
        assert!(matches!(
            normalize_domain("a..b"),
            Err(DomainError::BadLabel(_))
        ));
        assert!(normalize_domain(&"a".repeat(64)).is_err());
        assert!(normalize_domain("xn--zz--.com").is_err() || normalize_domain("xn--").is_err());
    }

    #[test]
    fn obfuscated_and_canaries() {
        let o = normalize_domain("ap.***.ST").unwrap();
        assert!(o.obfuscated);
        assert_eq!(o.domain, "ap.***.st");
        assert!(is_canary("dni.invalid"));
        assert!(is_canary("canary.tier0.example.com"));
        assert!(is_canary(
            "000delete.this.line.if.you.have.read.the.documentation.on.seirdy.one"
        ));
        assert!(is_canary(
            "000this.is.generated.from.overlap.across.trusted.sources.example.com"
        ));
        assert!(!is_canary("example.com"));
        assert!(!is_canary("canary.social"));
    }

    /// The plain definition [`canonical_labels`] must agree with.
    fn canonical_reference(b: &[u8]) -> bool {
        let mut label = 0usize;
        for (i, &c) in b.iter().enumerate() {
            if c == b'.' {
                if label == 0 || label > 63 {
                    return false;
                }
                label = 0;
            } else if c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_' {
                if c == b'-' && i >= 3 && &b[i - 3..=i] == b"xn--" {
                    return false;
                }
                label += 1;
            } else {
                return false;
            }
        }
        label > 0 && label <= 63
    }

    #[test]
    fn canonical_check_matches_its_definition() {
        let alphabet = b"ax-n.-_.9A\xc3";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200_000 {
            let max = match rnd(10) {
                0 => 140,
                1..=3 => 70,
                _ => 20,
            };
            let len = 1 + rnd(max) as usize;
            let mut d: Vec<u8> = (0..len)
                .map(|_| alphabet[rnd(alphabet.len() as u64) as usize])
                .collect();
            if rnd(4) == 0 {
                let at = rnd(len as u64) as usize;
                d.splice(at..at, b"xn--".iter().copied());
            }
            if d[0] == b'.' || d[d.len() - 1] == b'.' {
                continue;
            }
            // Longer domains go the slow way, which gives the same (tested below).
            assert_eq!(
                canonical_labels(&d),
                d.len() <= 63 && canonical_reference(&d),
                "{:?}",
                String::from_utf8_lossy(&d)
            );
        }
        for d in [
            "a".repeat(63),
            "a".repeat(64),
            format!("{}.b", "a".repeat(64)),
            format!("{}.b", "a".repeat(63)),
            format!("{}.{}.c", "a".repeat(63), "b".repeat(63)),
            format!("{}.{}.c", "a".repeat(63), "b".repeat(64)),
        ] {
            assert_eq!(
                canonical_labels(d.as_bytes()),
                d.len() <= 63 && canonical_reference(d.as_bytes())
            );
            // What the slow path makes of a long one: unchanged if it is canonical.
            let n = normalize_domain(&d);
            if canonical_reference(d.as_bytes()) {
                let n = n.unwrap();
                assert_eq!(n.domain, d);
                assert!(!n.changed);
            } else {
                assert!(n.is_err());
            }
        }
    }

    #[test]
    fn digest_and_parents() {
        assert_eq!(
            digest("example.com"),
            "a379a6f6eeafb9a55e378c118034e2751e682fab9f2d30ab13d2125586ce1947"
        );
        let p: Vec<&str> = parents("a.b.example.com").collect();
        assert_eq!(p, vec!["b.example.com", "example.com", "com"]);
    }
}
