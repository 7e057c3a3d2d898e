//! The configuration reference cannot drift from the code: every watcher option and environment
//! variable that `--help` shows is documented.

mod common;

#[test]
fn docs_list_every_watcher_option() {
    let help = std::process::Command::new(common::watcher_bin()).args(["run", "--help"]).output().unwrap();
    let help = common::text(&help.stdout);
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIGURATION.md")).unwrap();
    let mut checked = 0;
    for word in help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']') {
        let word = word.trim_end_matches('=');
        let name = word.strip_prefix("env:").unwrap_or(word);
        let is_flag = name.starts_with("--") && name.len() > 2 && !matches!(name, "--help" | "--version");
        let is_env = name.starts_with("GFS2_FENCE_");
        if is_flag || is_env {
            let name = name.split('=').next().unwrap();
            assert!(doc.contains(&format!("`{name}")), "docs/CONFIGURATION.md does not document {name}");
            checked += 1;
        }
    }
    assert!(checked >= 26, "found only {checked} options in --help:\n{help}");
}
