//! Rebuilds when a migration changes: `embed_migrations!` does not notice new files by itself.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=fixtures");
    println!("cargo:rerun-if-changed=openapi.yaml");
}
