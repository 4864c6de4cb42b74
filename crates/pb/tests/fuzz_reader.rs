#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fuzzing the reader: arbitrary input never panics; a malformed line is reported with its number.

use guildhall_pb::check::check_election;
use guildhall_pb::read_election;
use proptest::prelude::*;

const GOOD: &str = "META\nkey;value\ndescription;d\ncountry;c\nunit;u\ninstance;1\nnum_projects;3\nnum_votes;3\nbudget;1000\nvote_type;cumulative\nrule;greedy\ndate_begin;01.01.2026\ndate_end;2026\nmax_sum_points;5\nPROJECTS\nproject_id;cost;votes;score;name\na;500;2;4;\"x;y \"\"q\"\"\"\nb;400;2;3;b\nc;300.5;1;1;c\nVOTES\nvoter_id;vote;points;age\n1;a,b;3,2;30\n2;a,c;1,1;40\n3;b;1;\n";

/// Lines of GOOD that the malformed-line test may replace (rows, not titles or headers).
const ROW_LINES: [usize; 18] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 17, 18, 19, 22, 23, 24,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok((e, _)) = read_election(&bytes[..], "fuzz") {
            let _ = check_election(&e);
        }
    }

    #[test]
    fn mutated_valid_file_never_panics(pos in 0usize..400, insert in "[;,\"\n a-c0-9.\\-]{0,8}", cut in 0usize..6) {
        let mut s = GOOD.to_string();
        let pos = pos.min(s.len());
        let pos = (0..=pos).rev().find(|&i| s.is_char_boundary(i)).unwrap();
        let end = (pos + cut).min(s.len());
        let end = (end..=s.len()).find(|&i| s.is_char_boundary(i)).unwrap();
        s.replace_range(pos..end, &insert);
        if let Ok((e, _)) = read_election(s.as_bytes(), "fuzz") {
            let _ = check_election(&e);
        }
    }

    #[test]
    fn malformed_line_is_reported_with_its_number(which in 0usize..ROW_LINES.len(), junk in "[a-z]{1,3};;;[a-z]{0,3}") {
        let line = ROW_LINES[which];
        let mut lines: Vec<String> = GOOD.lines().map(String::from).collect();
        lines[line - 1] = junk;
        let text = lines.join("\n") + "\n";
        match read_election(text.as_bytes(), "fuzz") {
            Ok((e, mut issues)) => {
                issues.extend(check_election(&e));
                prop_assert!(issues.iter().any(|i| i.line == Some(line)), "line {}: {:?}", line, issues);
            }
            Err(err) => prop_assert!(err.to_string().contains(&format!("line {line}")), "{}", err),
        }
    }
}

#[test]
fn good_sample_is_clean_and_keeps_the_good_part() {
    let (e, issues) = read_election(GOOD.as_bytes(), "good").unwrap();
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(e.projects[0].cells[4], "x;y \"q\"");
    assert!(check_election(&e)
        .iter()
        .all(|i| i.severity == guildhall_pb::Severity::Warning));
    // a bad vote row is reported and skipped; the other rows stay
    let bad = GOOD.replace("2;a,c;1,1;40", "2;a,zz;1,1;40");
    let (e, issues) = read_election(bad.as_bytes(), "bad").unwrap();
    assert_eq!(e.voters.len(), 3);
    assert!(issues
        .iter()
        .any(|i| i.line == Some(23) && i.code == "unknown-project"));
    // an empty line, a comma in a float and whitespace around list separators
    let bad = GOOD
        .replace("c;300.5;1;1;c", "c;300,5;1;1;c")
        .replace("1;a,b;3,2;30", "1;a, b;3,2;30")
        .replace("PROJECTS\n", "\nPROJECTS\n");
    let (_, issues) = read_election(bad.as_bytes(), "bad").unwrap();
    let codes: Vec<(Option<usize>, &str)> = issues.iter().map(|i| (i.line, i.code)).collect();
    assert!(codes.contains(&(Some(15), "empty-line")), "{codes:?}");
    assert!(codes.contains(&(Some(20), "comma-in-float")), "{codes:?}");
    assert!(codes.contains(&(Some(23), "list-whitespace")), "{codes:?}");
}

/// Vote rows are read the same whether their cells are quoted (general splitter) or not (fast
/// path), and when they have more cells than the fast path holds.
#[test]
fn quoted_plain_and_long_vote_rows_read_alike() {
    let rows = [
        "1;a,b;3,2;30",
        " 2;a, c;1,1;40",
        "3;b;1;",
        "4;a,a;1,1;5",
        "5;z;1;7",
        "6;;;8",
    ];
    let head = GOOD.split("VOTES\n").next().unwrap();
    let file = |rows: Vec<String>| {
        let text = format!(
            "{head}VOTES\nvoter_id;vote;points;age\n{}\n",
            rows.join("\n")
        );
        read_election(text.as_bytes(), "t").unwrap()
    };
    let plain = file(rows.iter().map(|r| r.to_string()).collect());
    let quoted = file(
        rows.iter()
            .map(|r| {
                r.split(';')
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(";")
            })
            .collect(),
    );
    let long = file(
        rows.iter()
            .map(|r| format!("{r}{}", ";x".repeat(20)))
            .collect(),
    );
    let codes = |issues: &[guildhall_pb::reader::Issue]| -> Vec<(Option<usize>, &'static str)> {
        issues.iter().map(|i| (i.line, i.code)).collect()
    };
    assert_eq!(plain.0.voters, quoted.0.voters);
    assert_eq!(codes(&plain.1), codes(&quoted.1));
    assert!(codes(&plain.1).contains(&(Some(23), "whitespace")));
    assert!(codes(&plain.1).contains(&(Some(25), "duplicate-in-vote")));
    assert!(codes(&plain.1).contains(&(Some(26), "unknown-project")));
    assert_eq!(plain.0.voters, long.0.voters);
    let long_codes: Vec<_> = codes(&long.1)
        .into_iter()
        .filter(|c| c.1 != "row-length")
        .collect();
    assert_eq!(codes(&plain.1), long_codes);
    assert_eq!(
        codes(&long.1)
            .iter()
            .filter(|c| c.1 == "row-length")
            .count(),
        rows.len()
    );
}
