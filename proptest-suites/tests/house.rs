//! The house rule, checked on the source of every crate of the workspace: a module uses only modules
//! declared before it, so the imports form layers without circles and the folders can be read
//! bottom-up.
//!
//! - The order is the code's: the `mod` declarations of `lib.rs` and of each folder's `mod.rs`, lowest
//!   first (rustfmt keeps it: `reorder_modules = false`).
//! - A module `a` uses a module `b` when its code (not its comments, strings or `#[cfg(test)]` items)
//!   names a path into `b` through `crate::`, `super::`, `self::` or a child module's name. Let `p` be
//!   the deepest folder holding both: `b`'s branch of `p` must be declared before `a`'s.
//! - A folder's `mod.rs` (and `lib.rs`) is the top of its folder: it may use its children, they may
//!   not use it (what they share lives in a child below them).
//! - Every module opens with a `//!` doc.
//!
//! Binaries under `src/bin/` stand above their library and are not checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A module's path inside its crate (`[]` for the crate root).
type ModPath = Vec<String>;

struct Module {
    file: PathBuf,
    /// Its code, comments and literals removed, `#[cfg(test)]` items cut.
    code: String,
    /// The file modules it declares, in order.
    children: Vec<String>,
}

/// Blanks comments, string and char literals (keeping line structure); lifetimes stay.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) && !ident_before(b, i) {
            let mut hashes = 0;
            let mut j = i + 1;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c as char);
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            j += 1;
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}', '"') or a lifetime ('a).
            if b.get(i + 1) == Some(&b'\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else if b.get(i + 2) == Some(&b'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            // Multi-byte UTF-8 outside literals is copied whole.
            let len = std::str::from_utf8(&b[i..]).map_or(1, |s| s.chars().next().map_or(1, char::len_utf8));
            out.push_str(&src[i..i + len]);
            i += len;
        }
    }
    out
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// Removes every item carrying `#[cfg(test)]`: up to its `;` or its closing brace.
fn cut_tests(code: &str) -> String {
    let mut out = code.to_string();
    while let Some(at) = out.find("#[cfg(test)]") {
        let b = out.as_bytes();
        let mut i = at + "#[cfg(test)]".len();
        let mut depth = 0usize;
        while i < b.len() {
            match b[i] {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        out.replace_range(at..i.min(out.len()), "");
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier words of `code`, with `::`, `{`, `}`, `,`, `;` as their own tokens.
fn tokens(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if is_ident(c) {
            let mut end = at + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !is_ident(d) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            out.push(code[at..end].to_string());
        } else if c == ':' && chars.peek().is_some_and(|&(_, d)| d == ':') {
            chars.next();
            out.push("::".into());
        } else if "{},;*".contains(c) {
            out.push(c.to_string());
        } else if !c.is_whitespace() {
            out.push("#".into());
        }
    }
    out
}

/// The paths named by `use` trees and by `a::b::c` expressions.
fn paths(tokens: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == "use" {
            let mut j = i + 1;
            use_tree(tokens, &mut j, Vec::new(), &mut out);
            i = j;
        } else if tokens[i].chars().all(is_ident) && tokens.get(i + 1).is_some_and(|t| t == "::") {
            let mut path = vec![tokens[i].clone()];
            let mut j = i + 1;
            while tokens.get(j).is_some_and(|t| t == "::") && tokens.get(j + 1).is_some_and(|t| t.chars().all(is_ident))
            {
                path.push(tokens[j + 1].clone());
                j += 2;
            }
            out.push(path);
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn use_tree(tokens: &[String], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    while let Some(t) = tokens.get(*i) {
        match t.as_str() {
            "::" => *i += 1,
            "{" => {
                *i += 1;
                loop {
                    use_tree(tokens, i, path.clone(), out);
                    match tokens.get(*i).map(String::as_str) {
                        Some(",") => *i += 1,
                        Some("}") => {
                            *i += 1;
                            return;
                        }
                        _ => return,
                    }
                    if tokens.get(*i).is_some_and(|t| t == "}") {
                        *i += 1;
                        return;
                    }
                }
            }
            "," | "}" | ";" => {
                out.push(path);
                if t == ";" {
                    *i += 1;
                }
                return;
            }
            "as" => {
                *i += 2;
            }
            "*" => *i += 1,
            _ => {
                path.push(t.clone());
                *i += 1;
            }
        }
    }
}

/// The `mod x;` declarations of `code`, in order.
fn declared(tokens: &[String]) -> Vec<String> {
    tokens
        .windows(3)
        .filter(|w| w[0] == "mod" && w[2] == ";" && w[1].chars().all(is_ident))
        .map(|w| w[1].clone())
        .collect()
}

fn load(dir: &Path, path: ModPath, file: PathBuf, mods: &mut BTreeMap<ModPath, Module>) {
    let src = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(src.starts_with("//!"), "{} does not open with a //! module doc", file.display());
    let code = cut_tests(&strip(&src));
    let children = declared(&tokens(&code));
    for child in &children {
        let (flat, nested) = (dir.join(format!("{child}.rs")), dir.join(child).join("mod.rs"));
        let mut sub = path.clone();
        sub.push(child.clone());
        if flat.exists() {
            load(&dir.join(child), sub, flat, mods);
        } else {
            assert!(nested.exists(), "{}: no file for mod {child}", file.display());
            load(&dir.join(child), sub, nested, mods);
        }
    }
    mods.insert(path, Module { file, code, children });
}

/// The module a path names, from the module `at`: the deepest existing module it reaches.
fn resolve(at: &ModPath, path: &[String], mods: &BTreeMap<ModPath, Module>) -> Option<ModPath> {
    let (mut base, rest): (ModPath, &[String]) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("self") => (at.clone(), &path[1..]),
        Some("super") => {
            let mut base = at.clone();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        Some(first) if mods[at].children.iter().any(|c| c == first) => (at.clone(), path),
        _ => return None,
    };
    let mut found = base.clone();
    for seg in rest {
        base.push(seg.clone());
        if mods.contains_key(&base) {
            found = base.clone();
        } else {
            break;
        }
    }
    Some(found)
}

/// Every use of a module declared after the user's branch, or of the user's own folder top.
fn violations(root: &Path) -> Vec<String> {
    let mut mods = BTreeMap::new();
    load(&root.join("src"), Vec::new(), root.join("src/lib.rs"), &mut mods);
    let mut found = Vec::new();
    for (at, module) in &mods {
        for path in paths(&tokens(&module.code)) {
            let Some(used) = resolve(at, &path, &mods) else { continue };
            if used == *at || used.starts_with(at) {
                continue; // itself, or a folder top using its own children
            }
            let common = at.iter().zip(&used).take_while(|(a, b)| a == b).count();
            let why = if common == used.len() {
                Some("its own folder's top".to_string())
            } else {
                let parent = &mods[&used[..common].to_vec()];
                let order = |name: &str| parent.children.iter().position(|c| c == name);
                let (mine, theirs) = (order(&at[common]), order(&used[common]));
                (theirs >= mine)
                    .then(|| format!("declared after {} in {}", at[..=common].join("::"), parent.file.display()))
            };
            if let Some(why) = why {
                found.push(format!("{} ({}) uses {}: {why}", name(at), module.file.display(), name(&used)));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn name(path: &ModPath) -> String {
    if path.is_empty() {
        "crate".into()
    } else {
        path.join("::")
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf()
}

#[test]
fn no_module_uses_one_above_it() {
    let mut all = Vec::new();
    for krate in ["ha", "watcher", "agent", "proptest-suites"] {
        all.extend(violations(&workspace().join(krate)).into_iter().map(|v| format!("{krate}: {v}")));
    }
    assert!(all.is_empty(), "{} imports run up the house:\n{}", all.len(), all.join("\n"));
}

#[test]
fn the_check_reads_use_trees_and_paths_but_not_comments_strings_or_tests() {
    let src = r##"//! doc
use crate::a::{b::{self, C}, d as e};
// use crate::commented;
const S: &str = "crate::in_string";
const R: &str = r#"crate::in_raw "string""#;
const Q: char = '"';
fn f<'a>(x: &'a str) { super::g::h(x); }
#[cfg(test)]
mod tests { use crate::only_in_tests; }
"##;
    let code = cut_tests(&strip(src));
    let found: Vec<String> = paths(&tokens(&code)).iter().map(|p| p.join("::")).collect();
    assert_eq!(found, ["crate::a::b::self", "crate::a::b::C", "crate::a::d", "super::g::h"]);
}

/// ARCHITECTURE.md's map of the house names every module of every crate, so it cannot fall behind.
#[test]
fn the_map_in_architecture_md_names_every_module() {
    let doc = std::fs::read_to_string(workspace().join("docs/ARCHITECTURE.md")).unwrap();
    let map = doc.split("## The house").nth(1).and_then(|s| s.split("## One fence").next()).expect("the map");
    let words: std::collections::BTreeSet<&str> = map.split(|c: char| !(c.is_alphanumeric() || c == '_')).collect();
    let mut missing = Vec::new();
    for krate in ["ha", "watcher", "agent", "proptest-suites"] {
        let mut mods = BTreeMap::new();
        let root = workspace().join(krate);
        load(&root.join("src"), Vec::new(), root.join("src/lib.rs"), &mut mods);
        missing.extend(
            mods.keys()
                .filter_map(|m| m.last())
                .filter(|m| !words.contains(m.as_str()))
                .map(|m| format!("{krate}: {m}")),
        );
    }
    assert!(missing.is_empty(), "docs/ARCHITECTURE.md's map does not name: {missing:?}");
}
