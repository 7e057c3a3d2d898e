//! The fence-agents option parser: any permutation of the keys, aliases (`port`/`plug`,
//! `option`/`action`), `-`/`_` spellings, comments, blank lines, quotes, earlier repeated keys and
//! unknown keys gives the same options as the canonical form. Protects the agent against whatever
//! Pacemaker version, pcs or operator feeds it.

use proptest::prelude::*;

use agent::options::{from_stdin, Options};

fn canonical() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    (
        prop::sample::select(vec!["off", "on", "reboot", "status"]),
        "[a-z][a-z0-9-]{0,12}",
        prop::option::of("[a-z][a-z0-9]{0,8}"),
        prop::option::of(1u32..600),
        prop::option::of(0u32..10),
        prop::option::of(-1000i32..1000),
        prop::option::of("/[a-z]{1,8}(/[a-z]{1,8}){0,2}"),
    )
        .prop_map(|(action, plug, nodename, timeout, delay, prio, spool)| {
            let mut v = vec![("action", action.to_string()), ("plug", plug)];
            v.extend(nodename.map(|n| ("nodename", n)));
            v.extend(timeout.map(|t| ("fence_timeout", t.to_string())));
            v.extend(delay.map(|d| ("delay", d.to_string())));
            v.extend(prio.map(|p| ("queue_priority", p.to_string())));
            v.extend(spool.map(|s| ("spool_dir", s)));
            v
        })
}

fn render(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

#[derive(Debug, Clone)]
struct Spelling {
    alias: bool,
    dashes: bool,
    indent: usize,
    quote: Option<char>,
    comment_before: bool,
    earlier_value: Option<String>,
}

fn spelling() -> impl Strategy<Value = Spelling> {
    (
        any::<bool>(),
        any::<bool>(),
        0usize..3,
        prop::option::of(prop::sample::select(vec!['"', '\''])),
        any::<bool>(),
        prop::option::of("[a-z0-9]{1,6}"),
    )
        .prop_map(|(alias, dashes, indent, quote, comment_before, earlier_value)| Spelling {
            alias,
            dashes,
            indent,
            quote,
            comment_before,
            earlier_value,
        })
}

fn spell(key: &str, value: &str, s: &Spelling) -> (String, String) {
    let key = match (key, s.alias) {
        ("plug", true) => "port".to_string(),
        ("action", true) => "option".to_string(),
        (k, _) => k.to_string(),
    };
    let key = if s.dashes { key.replace('_', "-") } else { key };
    let value = match s.quote {
        Some(q) => format!("{q}{value}{q}"),
        None => value.to_string(),
    };
    (key, value)
}

proptest! {
    #[test]
    fn every_spelling_gives_the_canonical_options(
        pairs in canonical(),
        spellings in prop::collection::vec(spelling(), 7),
        order in any::<prop::sample::Index>(),
        unknown in prop::collection::vec(("[a-z]{3,8}_x", "[a-z0-9=]{0,8}"), 0..4),
    ) {
        let want = from_stdin(&render(&pairs));
        let mut early = String::new();
        let mut lines: Vec<String> = Vec::new();
        for ((k, v), s) in pairs.iter().zip(&spellings) {
            if let Some(old) = &s.earlier_value {
                let (k, v) = spell(k, old, s);
                early.push_str(&format!("{k}={v}\n"));
            }
            let (key, value) = spell(k, v, s);
            let mut line = String::new();
            if s.comment_before {
                line.push_str("# a comment = not an option\n\n");
            }
            line.push_str(&format!("{}{key}={value}", " ".repeat(s.indent)));
            lines.push(line);
        }
        for (k, v) in &unknown {
            lines.push(format!("{k}={v}"));
        }
        let n = lines.len();
        lines.rotate_left(order.index(n));
        let text = format!("{early}{}\n", lines.join("\n"));
        let got = from_stdin(&text);
        prop_assert_eq!(&got.values, &want.values, "input:\n{}", text);
        let distinct: std::collections::BTreeSet<&String> = unknown.iter().map(|(k, _)| k).collect();
        prop_assert_eq!(got.warnings.len(), distinct.len());
        let a = Options::resolve(&got, |_| None).unwrap();
        let b = Options::resolve(&want, |_| None).unwrap();
        prop_assert_eq!(a, b);
    }
}
