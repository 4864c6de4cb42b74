//! Readers on the real lists in shared/data/blocklists and on hand-made edge cases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use guildhall_blocklist::domain::digest;
use guildhall_blocklist::merge::{merge, MergeOptions, SourceOptions};
use guildhall_blocklist::read::{detect, read_bytes, read_path, Format};
use guildhall_blocklist::types::{Blocklist, Level, Location, Severity};

fn data(rel: &str) -> PathBuf {
    std::env::var_os("GUILDHALL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"))
        })
        .join("blocklists")
        .join(rel)
}

fn load(rel: &str) -> Blocklist {
    read_path(&data(rel), None).unwrap()
}

fn domains(l: &Blocklist) -> BTreeSet<String> {
    l.entries.iter().map(|e| e.domain.clone()).collect()
}

#[test]
fn garden_fence_three_formats_agree() {
    let a = load("gardenfence/gardenfence-fediblocksync.csv");
    let b = load("gardenfence/gardenfence-mastodon.csv");
    let c = load("gardenfence/gardenfence.txt");
    for l in [&a, &b, &c] {
        assert_eq!(l.entries.len(), 143, "{}", l.origin);
        assert_eq!(l.error_count(), 0, "{:?}", l.problems);
    }
    assert_eq!(domains(&a), domains(&b));
    assert_eq!(domains(&a), domains(&c));
    let first = &a.entries[0];
    assert_eq!(first.domain, "5dollah.click");
    assert_eq!(
        first.public_comment,
        "anti-lgbtq, harassment, hate-speech, racism, spam"
    );
    assert!(first
        .private_comment
        .starts_with("Garden Fence 2026-07-05 "));
    assert_eq!(b.entries[0].public_comment, first.public_comment);
    assert_eq!(
        detect(&std::fs::read(data("gardenfence/gardenfence.txt")).unwrap()),
        Format::DomainList
    );
    assert_eq!(
        detect(&std::fs::read(data("gardenfence/gardenfence-mastodon.csv")).unwrap()),
        Format::MastodonCsv
    );
    assert_eq!(
        detect(&std::fs::read(data("gardenfence/gardenfence-fediblocksync.csv")).unwrap()),
        Format::Csv
    );
}

#[test]
fn obfuscated_rows_are_kept_apart() {
    let s = load("oliphant/blocklists/mastodon.social.csv");
    assert_eq!(s.obfuscated.len(), 130);
    assert_eq!(s.entries.len(), 396 - 130);
    assert!(s.entries.iter().all(|e| !e.domain.contains('*')));
    let o = load("oliphant/blocklists/mastodon/mastodon.online.csv");
    assert_eq!(o.obfuscated.len(), 108);
    assert_eq!(o.entries.len(), 325 - 108);
}

#[test]
fn mislabelled_seirdy_header_is_flagged() {
    let l = load("oliphant/blocklists/mastodon/seirdy-tier0.csv");
    assert!(l.problems.iter().any(|p| p.location == Location::File
        && p.level == Level::Error
        && p.message.contains("mislabelled")));
    // The correctly labelled copy reads cleanly.
    let ok = load("oliphant/blocklists/seirdy-tier0.csv");
    assert_eq!(ok.error_count(), 0, "{:?}", ok.problems);
    // 375 rows minus the `000delete…` and `canary.tier0.example.com` canaries.
    assert_eq!(ok.entries.len(), 373);
}

#[test]
fn canaries_and_two_dni_versions() {
    let l = load("oliphant/blocklists/dni.csv");
    assert!(l
        .problems
        .iter()
        .any(|p| p.level == Level::Info && p.message.contains("dni.invalid")));
    assert!(!domains(&l).contains("dni.invalid"));
    assert_eq!(l.entries.len(), 86);
    let g = load("iftas/DNI/dni.csv");
    assert_eq!(g.entries.len(), 34);
    assert_eq!(g.error_count(), 0);
    let csam = g
        .entries
        .iter()
        .find(|e| e.domain == "9yo.punipoka.pink")
        .unwrap();
    assert!(csam.reject_media);
    assert_eq!(csam.public_comment, "IFTAS:CSAM");
}

#[test]
fn every_real_file_reads_without_panicking() {
    let mut n = 0;
    for dir in [
        "gardenfence",
        "iftas/DNI",
        "iftas/CARIAD",
        "oliphant/blocklists",
        "oliphant/blocklists/mastodon",
        "oliphant-2023-05/blocklists",
        "oliphant-2023-05/blocklists/mastodon",
    ] {
        for f in std::fs::read_dir(data(dir)).unwrap() {
            let p = f.unwrap().path();
            if p.is_file() {
                let l = read_path(&p, None).unwrap();
                n += 1;
                if p.ends_with("cariad_audit.csv") {
                    assert_eq!(l.error_count(), 1, "{:?}", l.problems);
                    assert!(l.entries.is_empty());
                } else if p.ends_with("__allowlist.csv") {
                    // Only canaries (8 in 2026, 1 in 2023): reported and dropped.
                    assert!(l.entries.is_empty());
                    let canaries = l
                        .problems
                        .iter()
                        .filter(|p| p.message.contains("canary"))
                        .count();
                    assert!(canaries == 8 || canaries == 1, "{canaries}");
                } else {
                    assert!(!l.entries.is_empty(), "{}", p.display());
                }
            }
        }
    }
    assert!(n >= 40, "only {n} files");
}

#[test]
fn edge_cases_bom_crlf_quotes_blank_lines_and_bad_rows() {
    let text = "\u{feff}domain,severity,public_comment,reject_media\r\n\
                A.Example.COM.,suspend,\"spam, bots\",TRUE\r\n\
                \r\n\
                b.example,bogus,,False\r\n\
                c example,silence,,no\r\n\
                d.example,silence,,maybe\r\n\
                bücher.example,noop,,yes\r\n\
                e.example,,,\r\n\
                a.example.com,silence,later,f\r\n";
    let l = read_bytes(text.as_bytes(), "t.csv", None);
    let got: Vec<(&str, Severity)> = l
        .entries
        .iter()
        .map(|e| (e.domain.as_str(), e.severity))
        .collect();
    assert_eq!(
        got,
        [
            ("a.example.com", Severity::Silence),
            ("xn--bcher-kva.example", Severity::Noop),
            ("e.example", Severity::Noop)
        ]
    );
    assert_eq!(l.entries[0].public_comment, "later");
    let errors: Vec<Location> = l
        .problems
        .iter()
        .filter(|p| p.level == Level::Error)
        .map(|p| p.location)
        .collect();
    assert_eq!(
        errors,
        [Location::Line(4), Location::Line(5), Location::Line(6)]
    );
    assert!(l
        .problems
        .iter()
        .any(|p| p.location == Location::Line(9) && p.message.contains("last row wins")));
}

#[test]
fn json_formats_and_digest_matching() {
    let admin = r#"[{"id":"1","domain":"Bad.Example","severity":"silence","reject_media":true,"reject_reports":false,"private_comment":"p","public_comment":"c","obfuscate":false},
                    {"domain":"x.example","severity":"wrong"}, 7]"#;
    assert_eq!(detect(admin.as_bytes()), Format::AdminJson);
    let l = read_bytes(admin.as_bytes(), "admin.json", None);
    assert_eq!(l.entries.len(), 1);
    assert!(l.entries[0].reject_media);
    assert_eq!(l.entries[0].private_comment, "p");
    assert_eq!(l.error_count(), 2);

    let d = digest("secret.example");
    let public = format!(
        r#"[{{"domain":"sec***.example","digest":"{d}","severity":"suspend","comment":"spam"}},
                            {{"domain":"other.example","digest":"{}","severity":"silence","comment":""}}]"#,
        digest("other.example")
    );
    assert_eq!(detect(public.as_bytes()), Format::PublicJson);
    let p = read_bytes(public.as_bytes(), "public.json", None);
    assert_eq!(p.obfuscated.len(), 1);
    assert_eq!(p.obfuscated[0].digest.as_deref(), Some(d.as_str()));
    let plain = read_bytes(b"secret.example\n", "plain.txt", None);
    let r = merge(
        &[
            (SourceOptions::new("pub"), &p),
            (SourceOptions::new("plain"), &plain),
        ],
        MergeOptions::default(),
        &Default::default(),
    );
    assert_eq!(r.digests_resolved, 1);
    let s = r
        .audit
        .iter()
        .find(|a| a.domain == "secret.example")
        .unwrap();
    assert_eq!(s.count, 2);

    let rb = r#"{"blocks":{"a.example":{"isBlocked":true,"reason":"x"},"b.example":{"isBlocked":false},"c.example":{"isBlocked":"?"}}}"#;
    assert_eq!(detect(rb.as_bytes()), Format::RapidBlockJson);
    let l = read_bytes(rb.as_bytes(), "rb.json", None);
    assert_eq!(l.entries.len(), 2);
    assert_eq!(l.entries[1].severity, Severity::Noop);
    assert_eq!(l.error_count(), 1);
    let bad = read_bytes(b"[{\"domain\": ", "broken.json", None);
    assert!(bad.entries.is_empty());
    assert_eq!(bad.error_count(), 1);
}

#[test]
fn domain_lists_and_override() {
    let txt = "# a comment\nOne.Example\r\n\r\n! adblock style\ntwo.example,\n*.bad\n";
    let l = read_bytes(txt.as_bytes(), "l.txt", None);
    assert_eq!(
        domains(&l),
        ["one.example", "two.example"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert_eq!(l.obfuscated.len(), 1);
    assert!(l.entries.iter().all(|e| e.severity == Severity::Suspend));
    // Forcing CSV on a header-less list: no `domain` column, reported, nothing read.
    let f = read_bytes(b"a.example\nb.example\n", "f", Some(Format::Csv));
    assert!(f.entries.is_empty());
    assert_eq!(f.error_count(), 1);
    assert_eq!(
        "rapidblock.csv".parse::<Format>().unwrap(),
        Format::DomainList
    );
    assert!("nope".parse::<Format>().is_err());
}
