//! Property tests of the readers: no panic on arbitrary bytes; a malformed row is reported by
//! file and line while every valid row is kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use guildhall_blocklist::domain::normalize_domain;
use guildhall_blocklist::merge::{merge, MergeOptions, SourceOptions};
use guildhall_blocklist::read::{read_bytes, read_csv_full, Format};
use guildhall_blocklist::types::{Level, Location};
use proptest::prelude::*;

const FORMATS: [Option<Format>; 7] = [
    None,
    Some(Format::Csv),
    Some(Format::MastodonCsv),
    Some(Format::DomainList),
    Some(Format::AdminJson),
    Some(Format::PublicJson),
    Some(Format::RapidBlockJson),
];

fn check_invariants(bytes: &[u8]) {
    for f in FORMATS {
        let l = read_bytes(bytes, "fuzz", f);
        let mut seen = BTreeSet::new();
        for e in &l.entries {
            assert!(seen.insert(e.domain.clone()), "duplicate {}", e.domain);
            assert!(!e.domain.contains('*'));
            // Entries are already in canonical form.
            assert_eq!(normalize_domain(&e.domain).unwrap().domain, e.domain);
        }
        assert!(l.problems.iter().all(|p| p.origin == "fuzz"));
        // Merging whatever was read never panics either.
        let _ = merge(
            &[(SourceOptions::new("fuzz"), &l)],
            MergeOptions::default(),
            &Default::default(),
        );
    }
}

/// The fast CSV path (one buffer, no `csv` crate) must read exactly what the full reader reads:
/// same entries, obfuscated rows and problems (with the same lines), or fall back to it.
fn fast_csv_is_full_csv(bytes: &[u8]) {
    let fast = read_bytes(bytes, "f.csv", Some(Format::Csv));
    let full = read_csv_full(bytes, "f.csv");
    assert_eq!(
        fast.entries,
        full.entries,
        "{:?}",
        String::from_utf8_lossy(bytes)
    );
    assert_eq!(fast.obfuscated, full.obfuscated);
    assert_eq!(
        fast.problems,
        full.problems,
        "{:?}",
        String::from_utf8_lossy(bytes)
    );
}

#[test]
fn fast_csv_agrees_on_edge_cases() {
    for s in [
        "domain,severity\na.example,suspend\n",
        "domain,severity\r\na.example,suspend\r\n\r\n\r\nb.example,silence",
        "\n\n  \ndomain,public_comment\n\n a.example ,\"x, y\"\n,,\nb.example,\"\"\n",
        "domain,public_comment\na.example,\"say \"\"hi\"\"\"\nb.example,x\n",
        "domain,public_comment\na.example,\"two\nlines\"\nbad example,x\n",
        "domain,public_comment\na.example,x\rb.example,y\n",
        "domain,public_comment\na.example,a\"b\nc.example,\"q\"z\n",
        "domain,severity\na.example,suspend,extra\na.example,silence\nA.Example,noop\n",
        "domain,severity\na.example,\"suspend",
        "domain,severity,reject_media\n\"a.example\",\"silence\",\"yes\"\n\"b.example\"",
        "severity,comment\nsuspend,x\n",
        "domain\n\u{e9}.example\nxn--bcher-kva.example\nb\u{fc}cher.example\n",
    ] {
        fast_csv_is_full_csv(s.as_bytes());
    }
    fast_csv_is_full_csv(b"domain,severity\na.example,suspend\n\xffb.example,noop\n");
}

proptest! {
    #[test]
    fn fast_csv_reads_what_the_full_reader_reads(
        s in "(domain|#domain|severity|public_comment|reject_media|[a-z.*\u{e9}\"#, \r\n]|\r\n|true|yes|suspend|noop|xn--|a\\.example|\"x, y\"){0,80}"
    ) {
        fast_csv_is_full_csv(s.as_bytes());
        let with_header = format!("domain,severity,reject_media,public_comment,obfuscate\n{s}");
        fast_csv_is_full_csv(with_header.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_invariants(&bytes);
    }

    #[test]
    fn csv_like_noise_never_panics(s in "(domain|#domain|[a-z.*\u{e9}\u{feff}\"#, \r\n]|true|suspend|xn--){0,60}") {
        check_invariants(s.as_bytes());
    }

    #[test]
    fn json_like_noise_never_panics(s in r#"(\[|\]|\{|\}|"domain"|"severity"|"blocks"|"isBlocked"|"digest"|:|,|"a\.b"|true|null|1){0,40}"#) {
        check_invariants(s.as_bytes());
    }

    #[test]
    fn a_malformed_row_is_reported_and_the_rest_kept(
        rows in proptest::collection::vec(("[a-z]{1,8}\\.[a-z]{2,4}", 0..3usize, any::<bool>(), "[a-z ,]{0,12}"), 1..30),
        bad_at in 0..30usize,
        bad_kind in 0..4usize,
        crlf in any::<bool>(),
        mastodon in any::<bool>(),
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let h = if mastodon { "#" } else { "" };
        let mut text = format!("{h}domain,{h}severity,{h}reject_media,{h}public_comment{eol}");
        let bad_at = bad_at % (rows.len() + 1);
        let mut valid = BTreeSet::new();
        let mut bad_line = 0;
        let mut line = 1;
        for (i, (d, s, rm, c)) in rows.iter().enumerate() {
            if i == bad_at {
                line += 1;
                bad_line = line;
                text.push_str(match bad_kind {
                    0 => "bad domain.example,suspend,false,x",
                    1 => "ok-domain.example,severe,false,x",
                    2 => "ok-domain.example,suspend,perhaps,x",
                    _ => "a..b,silence,true,",
                });
                text.push_str(eol);
            }
            line += 1;
            let sev = ["noop", "silence", "suspend"][*s];
            text.push_str(&format!("{d},{sev},{rm},\"{c}\"{eol}"));
            valid.insert(d.clone());
        }
        if bad_at == rows.len() {
            line += 1;
            bad_line = line;
            text.push_str("bad domain.example,suspend,false,x");
            text.push_str(eol);
        }
        let l = read_bytes(text.as_bytes(), "rows.csv", None);
        let got: BTreeSet<String> = l.entries.iter().map(|e| e.domain.clone()).collect();
        prop_assert_eq!(got, valid);
        let errors: Vec<Location> = l.problems.iter().filter(|p| p.level == Level::Error).map(|p| p.location).collect();
        prop_assert_eq!(errors, vec![Location::Line(bad_line)]);
    }
}
