//! Rebuild when a migration file is added or changed: `sqlx::migrate!` embeds the folders at
//! compile time but does not tell Cargo to watch them.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
