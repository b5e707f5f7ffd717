// `sqlx::migrate!` embeds the .sql files; rustc tracks the files it read, not new ones: rebuild
// when a migration (or a test fixture) is added.
fn main() {
    println!("cargo:rerun-if-changed=.");
}
