//! The layering of every crate of the workspace, read with a real Rust parser (`syn`): a module uses
//! only modules declared before it, so the imports form layers without circles and the folders can be
//! read bottom-up (CONTRIBUTING.md: the order of `mod` lines is the layering).
//!
//! - The order is the code's: the `mod` declarations of `lib.rs` and of each folder's `mod.rs`, lowest
//!   first (rustfmt keeps it: `reorder_modules = false`). A `#[path]` attribute is followed; an inline
//!   `mod x { … }` is a module of its own, declared where it stands.
//! - A module `a` uses a module `b` when its code names a path into `b` through `crate::`, `super::`,
//!   `self::` or a child module's name: in `use` trees, in expressions, types and patterns, and inside
//!   macro calls (their tokens are read for `a::b` paths, as `format!` or `tracing::warn!` arguments
//!   are not Rust syntax until expanded). Not counted: comments and literals (they are not code),
//!   items under `#[cfg(test)]` (tests may reach anywhere), attributes, and a `pub(in path)`
//!   restriction (it names who may see an item, not what the item uses). Let `p` be the deepest
//!   folder holding both: `b`'s branch of `p` must be declared before `a`'s.
//! - A folder's `mod.rs` (and `lib.rs`) is the top of its folder: it may use its children, they may
//!   not use it (what they share lives in a child below them).
//! - Every module file opens with a `//!` doc.
//!
//! Binaries under `src/bin/` stand above their library and are not checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// A module's path inside its crate (`[]` for the crate root).
type ModPath = Vec<String>;

struct Module {
    /// The file it is written in (an inline module's is its parent's).
    file: PathBuf,
    /// The paths its code names (of two segments or more).
    uses: Vec<Vec<String>>,
    /// The modules it declares, in order.
    children: Vec<String>,
}

/// Whether an item is compiled only for tests.
fn for_tests(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().is_ident("cfg") && a.parse_args::<syn::Meta>().is_ok_and(|m| m.path().is_ident("test")))
}

/// The paths a module's items name.
#[derive(Default)]
struct Paths(Vec<Vec<String>>);

impl Paths {
    fn push(&mut self, path: Vec<String>) {
        if path.len() > 1 {
            self.0.push(path);
        }
    }

    fn use_tree(&mut self, tree: &syn::UseTree, mut prefix: Vec<String>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(&p.tree, prefix);
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                self.push(prefix);
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                self.push(prefix);
            }
            syn::UseTree::Glob(_) => self.push(prefix),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(t, prefix.clone())),
        }
    }

    /// `a::b::c` sequences in a macro call's tokens, at any depth of delimiters.
    fn tokens(&mut self, stream: TokenStream) {
        let trees: Vec<TokenTree> = stream.into_iter().collect();
        let colons = |at: usize| {
            matches!((trees.get(at), trees.get(at + 1)),
                (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                    if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':')
        };
        let mut i = 0;
        while i < trees.len() {
            match &trees[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(first) => {
                    let mut path = vec![first.to_string()];
                    while colons(i + 1) {
                        let Some(TokenTree::Ident(next)) = trees.get(i + 3) else { break };
                        path.push(next.to_string());
                        i += 3;
                    }
                    self.push(path);
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            syn::Item::Type(i) => &i.attrs,
            syn::Item::Macro(i) => &i.attrs,
            _ => return visit::visit_item(self, item),
        };
        if !for_tests(attrs) {
            visit::visit_item(self, item);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !for_tests(&f.attrs) {
            visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&u.tree, Vec::new());
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.tokens(m.tokens.clone());
    }

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}
}

/// Parses `file` as module `path` (whose child files are in `dir`), and every module it declares.
fn load(dir: &Path, path: ModPath, file: PathBuf, mods: &mut BTreeMap<ModPath, Module>) {
    let src = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(src.starts_with("//!"), "{} does not open with a //! module doc", file.display());
    let ast = syn::parse_file(&src).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    load_items(dir, path, &file, &ast.items, mods);
}

fn load_items(dir: &Path, path: ModPath, file: &Path, items: &[syn::Item], mods: &mut BTreeMap<ModPath, Module>) {
    let mut paths = Paths::default();
    let mut children = Vec::new();
    for item in items {
        let syn::Item::Mod(m) = item else {
            paths.visit_item(item);
            continue;
        };
        if for_tests(&m.attrs) {
            continue;
        }
        let name = m.ident.to_string();
        children.push(name.clone());
        let mut sub = path.clone();
        sub.push(name.clone());
        let at = m.attrs.iter().find(|a| a.path().is_ident("path")).and_then(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        });
        match (&m.content, at) {
            (Some((_, inner)), _) => load_items(&dir.join(&name), sub, file, inner, mods),
            (None, Some(at)) => {
                let target = file.parent().expect("a file's folder").join(at);
                let stem = target.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let below = target.parent().expect("a file's folder").join(stem);
                load(&below, sub, target, mods);
            }
            (None, None) => {
                let (flat, nested) = (dir.join(format!("{name}.rs")), dir.join(&name).join("mod.rs"));
                assert!(flat.exists() || nested.exists(), "{}: no file for mod {name}", file.display());
                load(&dir.join(&name), sub, if flat.exists() { flat } else { nested }, mods);
            }
        }
    }
    mods.insert(path, Module { file: file.to_path_buf(), uses: paths.0, children });
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

fn crate_modules(krate: &str) -> BTreeMap<ModPath, Module> {
    let root = workspace().join(krate);
    let mut mods = BTreeMap::new();
    load(&root.join("src"), Vec::new(), root.join("src/lib.rs"), &mut mods);
    mods
}

/// Every use of a module declared after the user's branch, or of the user's own folder top.
fn violations(mods: &BTreeMap<ModPath, Module>) -> Vec<String> {
    let mut found = Vec::new();
    for (at, module) in mods {
        for path in &module.uses {
            let Some(used) = resolve(at, path, mods) else { continue };
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

const CRATES: [&str; 5] = ["ha", "agent", "audit-tools", "watcher", "harness"];

#[test]
fn no_module_uses_a_module_declared_after_it() {
    let mut all = Vec::new();
    for krate in CRATES {
        all.extend(violations(&crate_modules(krate)).into_iter().map(|v| format!("{krate}: {v}")));
    }
    assert!(all.is_empty(), "{} imports run up the house:\n{}", all.len(), all.join("\n"));
}

/// The reader itself, on a module written to hold every case: what it must see and what it must not.
#[test]
fn the_check_sees_use_trees_paths_and_macro_arguments_but_not_comments_strings_tests_or_visibility() {
    let src = r##"//! doc
use crate::a::{b::{self, C}, d as e};
// use crate::commented;
const S: &str = "crate::in_string";
const R: &str = r#"crate::in_raw "string""#;
pub(in crate::visible) fn f<'a>(x: &'a str) { super::g::h(x); tracing::warn!(n = %crate::m::n(), "{x}"); }
#[cfg(test)]
mod tests { use crate::only_in_tests; }
impl T { #[cfg(test)] fn t() { crate::only_in_test_fn(); } }
#[derive(crate::in_attribute::Derive)]
struct D;
"##;
    let ast = syn::parse_file(src).unwrap();
    let mut paths = Paths::default();
    for item in &ast.items {
        if !matches!(item, syn::Item::Mod(m) if for_tests(&m.attrs)) {
            paths.visit_item(item);
        }
    }
    let found: Vec<String> =
        paths.0.iter().filter(|p| p[0] == "crate" || p[0] == "super").map(|p| p.join("::")).collect();
    assert_eq!(found, ["crate::a::b::self", "crate::a::b::C", "crate::a::d", "super::g::h", "crate::m::n"]);
}

/// A module placed by `#[path]` and an inline module are found, and a use running up from either
/// is caught.
#[test]
fn modules_placed_by_path_or_written_inline_are_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("elsewhere")).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "//! root\n#[path = \"elsewhere/low.rs\"]\nmod low;\nmod high;\nmod inline { //! inline\n}\n",
    )
    .unwrap();
    std::fs::write(src.join("elsewhere/low.rs"), "//! low\nfn f() { crate::high::g(); crate::inline::h(); }\n")
        .unwrap();
    std::fs::write(src.join("high.rs"), "//! high\npub fn g() {}\n").unwrap();
    let mut mods = BTreeMap::new();
    load(&src, Vec::new(), src.join("lib.rs"), &mut mods);
    let found = violations(&mods);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("low ") && found[0].contains("uses high"), "{found:?}");
    assert!(found[1].starts_with("low ") && found[1].contains("uses inline"), "{found:?}");
}

/// ARCHITECTURE.md's map of the house names every module of every crate, so it cannot fall behind.
#[test]
fn the_map_in_architecture_md_names_every_module() {
    let doc = std::fs::read_to_string(workspace().join("docs/maintainers/ARCHITECTURE.md")).unwrap();
    let map = doc.split("## The house").nth(1).and_then(|s| s.split("## One fence").next()).expect("the map");
    let words: std::collections::BTreeSet<&str> = map.split(|c: char| !(c.is_alphanumeric() || c == '_')).collect();
    let mut missing = Vec::new();
    for krate in CRATES {
        missing.extend(
            crate_modules(krate)
                .keys()
                .filter_map(|m| m.last())
                .filter(|m| !words.contains(m.as_str()))
                .map(|m| format!("{krate}: {m}")),
        );
    }
    assert!(missing.is_empty(), "docs/maintainers/ARCHITECTURE.md's map does not name: {missing:?}");
}
