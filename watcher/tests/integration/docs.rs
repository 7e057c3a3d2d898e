//! The documentation cannot drift from the code: every option and environment variable the
//! watcher's and the events CLI's `--help` show is documented, and every `gfs2-fence-events` and
//! `gfs2-fence-watcher status` command in the docs runs against real logs and a real spool.

use std::path::Path;
use std::process::Command;

use harness::process::*;

fn documented(help: &str, doc: &str, prefixes: &[&str]) -> usize {
    let mut checked = 0;
    for word in help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']') {
        let word = word.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        let name = word.strip_prefix("env:").unwrap_or(word);
        let is_flag = name.starts_with("--") && name.len() > 2 && !matches!(name, "--help" | "--version");
        if is_flag || prefixes.iter().any(|p| name.starts_with(p)) {
            let name = name.split('=').next().unwrap();
            assert!(doc.contains(&format!("`{name}")), "docs/operators/CONFIGURATION.md does not document {name}");
            checked += 1;
        }
    }
    checked
}

fn doc_text(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)).unwrap()
}

#[test]
fn docs_list_every_events_and_status_option() {
    let doc = doc_text("docs/operators/CONFIGURATION.md");
    let mut checked = 0;
    for args in [&["list", "--help"][..], &["verify", "--help"]] {
        let help = text(&Command::new(events_bin()).args(args).output().unwrap().stdout);
        checked += documented(&help, &doc, &["LOG_DIR"]);
    }
    let help = text(&Command::new(watcher_bin()).args(["status", "--help"]).output().unwrap().stdout);
    checked += documented(&help, &doc, &["GFS2_FENCE_"]);
    assert!(checked >= 15, "found only {checked} options");
}

/// The environment table names every shared setting's canonical variable, its aliases and its
/// readers, as `ha::os::setting` defines them.
#[test]
fn docs_list_every_setting_and_alias() {
    let doc = doc_text("docs/operators/CONFIGURATION.md");
    for s in ha::os::setting::ALL {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", s.name)))
            .unwrap_or_else(|| panic!("docs/operators/CONFIGURATION.md has no environment row for {}", s.name));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        for a in s.aliases {
            assert!(cells[2].contains(&format!("`{}`", a.name)), "{}'s row does not name its alias {}", s.name, a.name);
        }
        assert_eq!(cells[3], s.read_by, "{}'s row names other readers", s.name);
    }
}

/// A documented command's words, as the shell splits them (double quotes keep spaces).
fn words(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut word, mut quoted, mut any) = (String::new(), false, false);
    for c in cmd.chars() {
        match c {
            '"' => (quoted, any) = (!quoted, true),
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => (word, any) = (word + &c.to_string(), true),
        }
    }
    if any {
        out.push(word);
    }
    out
}

/// The shell commands of the docs' code blocks that start with `program`.
fn doc_commands(program: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    // docs/<audience>/*.md, and the README.
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .flat_map(|audience| std::fs::read_dir(audience.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .collect();
    assert!(files.len() >= 12, "the docs' folders: {files:?}");
    files.push(dir.join("../README.md"));
    let mut out = Vec::new();
    for f in files {
        let mut in_code = false;
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            let cmd = line.split(" #").next().unwrap().trim();
            if in_code && cmd.starts_with(program) && !cmd.contains(['|', '>', '<', '&', '$']) {
                out.push((f.file_name().unwrap().to_string_lossy().into_owned(), cmd.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_documented_events_and_status_command_runs() {
    let w = World::new();
    let _w1 = w.watcher("w1", &[]);
    for node in ["compute-02", "compute-03"] {
        assert_exit(&w.agent(&format!("action=reboot\nport={node}\nnodename={node}\n")), 0);
    }
    let cwd = w.dir.path();
    // An anchor as the journal keeps them: the last record's seq and hash.
    let detailed = std::fs::read_to_string(w.logs.join("fence-events-detailed.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(detailed.lines().last().unwrap()).unwrap();
    std::fs::write(cwd.join("anchors.txt"), format!("seq={} hash={}\n", last["seq"], last["hash"].as_str().unwrap()))
        .unwrap();
    // The site view's examples: a gathered directory holding this rabbit's logs, an empty journal.
    let gathered = cwd.join("site").join(ha::os::host::name());
    std::fs::create_dir_all(&gathered).unwrap();
    for f in std::fs::read_dir(&w.logs).unwrap().flatten().filter(|f| f.path().is_file()) {
        std::fs::copy(f.path(), gathered.join(f.file_name())).unwrap();
    }
    std::fs::create_dir_all(cwd.join("journal")).unwrap();
    // The way back's examples: nnf-sos's directories (as nnf-sos makes them) holding its record of a
    // fence of compute-01.
    let nnf = [cwd.join("nnf-requests"), cwd.join("nnf-responses")];
    for d in &nnf {
        std::fs::create_dir(d).unwrap();
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let record = format!(r#"{{"request_id":"{}","target_node":"compute-01","success":true}}"#, new_id());
    std::fs::write(nnf[1].join("compute-01-x.json"), record).unwrap();
    let events = doc_commands("gfs2-fence-events");
    for (file, cmd) in &events {
        // The documented spool is the default one: here, this test's.
        let spool = path_str(&w.spool);
        let words = words(cmd);
        let args: Vec<&str> =
            words.iter().skip(1).map(|a| if a == ha::spool::DEFAULT_BASE { spool } else { a.as_str() }).collect();
        let out = Command::new(events_bin())
            .current_dir(cwd)
            .env("NNF_FENCE_REQUEST_DIR", &nnf[0])
            .env("NNF_FENCE_RESPONSE_DIR", &nnf[1])
            .args(&args)
            .arg("--log-dir")
            .arg(&w.logs)
            .output()
            .unwrap();
        let said = text(&out.stdout) + &text(&out.stderr);
        let journal_missing = args.contains(&"--journal") && said.contains("cannot read the journal's anchors");
        assert!(out.status.success() || journal_missing, "{file}: `{cmd}` failed: {said}");
    }
    let status = doc_commands("gfs2-fence-watcher status");
    for (file, cmd) in &status {
        let mut args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
        if args.contains(&"--watch") {
            args.extend(["--frames", "1"]);
        }
        let out = Command::new(watcher_bin()).args(&args).arg("--spool-dir").arg(&w.spool).output().unwrap();
        assert!(out.status.success(), "{file}: `{cmd}` failed: {}", text(&out.stderr));
    }
    assert!(events.len() >= 10 && !status.is_empty(), "too few documented commands found: {events:?} {status:?}");
}

#[test]
fn docs_list_every_watcher_option() {
    let help = text(&Command::new(watcher_bin()).args(["run", "--help"]).output().unwrap().stdout);
    let checked = documented(&help, &doc_text("docs/operators/CONFIGURATION.md"), &["GFS2_FENCE_"]);
    assert!(checked >= 26, "found only {checked} options in --help:\n{help}");
}

#[test]
fn the_installed_examples_are_valid_and_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/examples");
    let config = watcher::config::FenceConfig::load(Some(&root.join("watcher.json")), None, &Default::default());
    assert!(config.is_ok(), "packaging/examples/watcher.json: {config:?}");
    let doc = doc_text("docs/operators/CONFIGURATION.md");
    let sysconfig = std::fs::read_to_string(root.join("gfs2-fence-watcher.sysconfig")).unwrap();
    let mut names = 0;
    for line in sysconfig.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some((name, _)) = line.split_once('=').filter(|(n, _)| n.starts_with("GFS2_")) {
            assert!(doc.contains(&format!("`{name}`")), "{name} is not in docs/operators/CONFIGURATION.md");
            names += 1;
        }
    }
    assert!(names >= 5, "{sysconfig}");
}

/// TESTING.md's list of integration modules is the code's: each crate's `tests/integration/` modules,
/// under that crate's heading, and no module that is not there.
#[test]
fn testing_md_lists_every_integration_module_under_its_crate() {
    let doc = doc_text("docs/maintainers/TESTING.md");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut crates = 0;
    for section in doc.split("\n### ").skip(1) {
        let Some(dir) = section.lines().next().and_then(|h| h.split('`').nth(3)) else { continue };
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        crates += 1;
        let mut modules: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".rs").map(str::to_string))
            .filter(|m| m != "main")
            .collect();
        modules.sort();
        let table = section.split("\n\n").nth(1).unwrap_or_default();
        let mut listed: Vec<String> =
            table.lines().filter_map(|l| l.strip_prefix("| `")?.split('`').next()).map(str::to_string).collect();
        listed.sort();
        assert_eq!(listed, modules, "docs/maintainers/TESTING.md, section {dir}");
    }
    assert_eq!(crates, 4, "a section per crate with integration tests (agent, audit-tools, ha, watcher)");
}

/// Every relative link of the README, CONTRIBUTING.md and the docs' folders names a file that is
/// there, so a document moved between audiences cannot leave a link behind.
#[test]
fn every_link_between_the_docs_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("README.md"), root.join("CONTRIBUTING.md")];
    for audience in std::fs::read_dir(root.join("docs")).unwrap().flatten() {
        files.extend(std::fs::read_dir(audience.path()).unwrap().flatten().map(|e| e.path()));
    }
    let mut checked = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for link in text.split("](").skip(1).filter_map(|rest| rest.split([')', '#']).next()) {
            if link.contains("://") || !link.ends_with(".md") {
                continue;
            }
            assert!(f.parent().unwrap().join(link).is_file(), "{}: the link to {link} leads nowhere", f.display());
            checked += 1;
        }
    }
    assert!(checked >= 20, "found only {checked} links");
}
