#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (f, _) =
        guildhall_sortition::input::read_features("f", std::fs::File::open(&a[1]).unwrap())
            .unwrap();
    let mut s = guildhall_sortition::Settings::default();
    if a.len() > 4 {
        s.check_same_address = true;
        s.check_same_address_columns = vec!["address".into(), "postcode".into()];
    }
    let (p, e) =
        guildhall_sortition::input::read_people("p", std::fs::File::open(&a[2]).unwrap(), &f, &s)
            .unwrap();
    assert!(e.is_empty());
    let k: usize = a[3].parse().unwrap();
    let t = std::time::Instant::now();
    let d = guildhall_sortition::find_maximin(&f, &p, k)
        .unwrap()
        .unwrap();
    println!(
        "n={} k={} min={:.9} panels={} generated={} time={:?}",
        p.people.len(),
        k,
        d.min_probability(),
        d.panels.len(),
        d.panels_generated,
        t.elapsed()
    );
}
