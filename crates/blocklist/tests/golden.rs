//! Golden tests: the Oliphant 2023 tiers and the final unified tier 0, reproduced byte for byte
//! (reference: shared/reference/blocklists.md §4).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use guildhall_blocklist::merge::{
    allow_set, ImportFields, MergeOptions, MergePlan, Merger, SourceOptions, ThresholdType,
};
use guildhall_blocklist::read::{read_bytes, read_path, Format};
use guildhall_blocklist::types::{Blocklist, Severity};
use guildhall_blocklist::write::{write_fbh_csv, write_mastodon_csv};

fn data() -> PathBuf {
    std::env::var_os("GUILDHALL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"))
        })
        .join("blocklists")
}

fn load(dir: &str, name: &str) -> Blocklist {
    let p = data().join(dir).join("blocklists").join(name);
    read_path(&p, None).unwrap_or_else(|e| panic!("{e}"))
}

fn oliphant_import() -> ImportFields {
    let mut f = ImportFields::default();
    for n in [
        "public_comment",
        "reject_media",
        "reject_reports",
        "obfuscate",
    ] {
        f.add(n).unwrap();
    }
    f
}

fn export() -> Vec<String> {
    [
        "reject_media",
        "reject_reports",
        "public_comment",
        "obfuscate",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One FediBlockHole merge step written as FediBlockHole writes it.
fn step(
    inputs: &[&Blocklist],
    allow: &[&Blocklist],
    plan: MergePlan,
    pct: Option<f64>,
    count: Option<f64>,
) -> Vec<u8> {
    let opts = MergeOptions {
        plan,
        threshold: pct.or(count).unwrap_or(0.0),
        threshold_type: if pct.is_some() {
            ThresholdType::Pct
        } else {
            ThresholdType::Count
        },
        import: oliphant_import(),
        subdomains: false,
        no_audit: false,
    };
    let mut m = Merger::new(opts);
    for l in inputs {
        m.add(SourceOptions::new(l.origin.clone()), l);
    }
    let r = m.finish(&allow_set(allow.iter().copied(), &[]));
    let mut out = Vec::new();
    write_fbh_csv(&mut out, &r.entries, &export()).unwrap();
    out
}

fn expect_same(ours: &[u8], dir: &str, name: &str) {
    let p = data().join(dir).join("blocklists").join(name);
    let want = std::fs::read(&p).unwrap();
    if ours != want.as_slice() {
        let o = String::from_utf8_lossy(ours);
        let w = String::from_utf8_lossy(&want);
        for (i, (a, b)) in o.lines().zip(w.lines()).enumerate() {
            assert_eq!(a, b, "{name} differs at line {}", i + 1);
        }
        panic!(
            "{name}: {} lines vs {} expected",
            o.lines().count(),
            w.lines().count()
        );
    }
}

fn severity_mix(bytes: &[u8]) -> (usize, usize, usize) {
    let l = read_bytes(bytes, "mix", Some(Format::Csv));
    let n = |s| l.entries.iter().filter(|e| e.severity == s).count();
    (l.entries.len(), n(Severity::Suspend), n(Severity::Silence))
}

#[test]
fn oliphant_2023_tiers_reproduce_byte_for_byte() {
    const D: &str = "oliphant-2023-05";
    let order1 = [
        "pleroma.envs.net",
        "union.place",
        "sunny.garden",
        "toot.wales",
        "mastodon.art",
        "rage.love",
        "artisan.chat",
        "solarpunk.moe",
    ];
    let order2 = [
        "union.place",
        "sunny.garden",
        "mastodon.art",
        "artisan.chat",
        "toot.wales",
        "rage.love",
        "pleroma.envs.net",
        "solarpunk.moe",
    ];
    let get = |order: &[&str]| -> Vec<Blocklist> {
        order.iter().map(|n| load(D, &format!("{n}.csv"))).collect()
    };
    let c1 = get(&order1);
    let c2 = get(&order2);
    let r1: Vec<&Blocklist> = c1.iter().collect();
    let r2: Vec<&Blocklist> = c2.iter().collect();
    let a1 = load(D, "__allowlist.csv");
    let a2 = load(D, "birdsite.csv");
    assert_eq!(a2.entries.len(), 185);
    let allow = [&a1, &a2];

    let council = step(&r1, &allow, MergePlan::Min, Some(80.0), None);
    expect_same(&council, D, "tier0-council.csv");
    assert_eq!(severity_mix(&council), (137, 125, 12));
    let hundred = step(&r1, &allow, MergePlan::Min, Some(100.0), None);
    expect_same(&hundred, D, "100.percent.csv");
    assert_eq!(severity_mix(&hundred), (66, 61, 5));

    let council_list = read_bytes(&council, "tier0-council.csv", None);
    let t0 = step(
        &[
            &load(D, "tier0.csv"),
            &load(D, "gardenfence.csv"),
            &council_list,
        ],
        &allow,
        MergePlan::Max,
        None,
        None,
    );
    expect_same(&t0, D, "_unified_tier0_blocklist.csv");
    assert_eq!(severity_mix(&t0), (385, 384, 1));
    let t0_list = read_bytes(&t0, "_unified_tier0_blocklist.csv", None);

    let tiers = [
        (1, Some(50.0), None, (570, 521, 49)),
        (2, Some(33.0), None, (825, 750, 75)),
        (3, None, Some(2.0), (1273, 1160, 113)),
    ];
    for (n, pct, count, mix) in tiers {
        let working = step(&r2, &allow, MergePlan::Min, pct, count);
        let wl = read_bytes(&working, "working", None);
        let unified = step(&[&t0_list, &wl], &allow, MergePlan::Min, None, None);
        expect_same(&unified, D, &format!("_unified_tier{n}_blocklist.csv"));
        assert_eq!(severity_mix(&unified), mix, "tier {n}");
    }
}

#[test]
fn final_unified_tier0_reproduces_with_comments_and_flags() {
    const D: &str = "oliphant";
    let inputs = [
        load(D, "seirdy-tier0.csv"),
        load(D, "gardenfence.csv"),
        load(D, "dni.csv"),
        load(D, "iftas-aud.csv"),
    ];
    let refs: Vec<&Blocklist> = inputs.iter().collect();
    let allow = load(D, "__allowlist.csv");
    let out = step(&refs, &[&allow], MergePlan::Max, None, None);
    expect_same(&out, D, "_unified_tier0_blocklist.csv");
    assert_eq!(severity_mix(&out), (449, 444, 5));
    // Without AUD the merge has 417 rows (reference §4.3).
    let out3 = step(&refs[..3], &[&allow], MergePlan::Max, None, None);
    assert_eq!(severity_mix(&out3).0, 417);
    // The Mastodon copy is our Mastodon CSV, lower-cased as Oliphant's script does.
    let merged = read_bytes(&out, "merged", None);
    let mut m = Vec::new();
    write_mastodon_csv(&mut m, &merged.entries).unwrap();
    let want = std::fs::read(
        data()
            .join(D)
            .join("blocklists/mastodon/_unified_tier0_blocklist.csv"),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(m).unwrap().to_lowercase(),
        String::from_utf8(want).unwrap()
    );
}

#[test]
fn input_order_changes_merged_comments() {
    const D: &str = "oliphant";
    let inputs = [
        load(D, "seirdy-tier0.csv"),
        load(D, "gardenfence.csv"),
        load(D, "dni.csv"),
        load(D, "iftas-aud.csv"),
    ];
    let allow = load(D, "__allowlist.csv");
    let reversed: Vec<&Blocklist> = inputs.iter().rev().collect();
    let out = step(&reversed, &[&allow], MergePlan::Max, None, None);
    let want = std::fs::read(
        data()
            .join(D)
            .join("blocklists/_unified_tier0_blocklist.csv"),
    )
    .unwrap();
    assert_ne!(out, want);
    assert_eq!(severity_mix(&out), (449, 444, 5));
}
