//! The fence-agents option parser: any permutation of the keys, the `port` alias of `plug`, `-`/`_`
//! spellings, comments, blank lines, quotes, earlier repeated keys and
//! unknown keys gives the same options as the canonical form. Protects the agent against whatever
//! Pacemaker version, pcs or operator feeds it.

use proptest::prelude::*;

use agent::options::Start;
use agent::options::{from_stdin, Options};
use agent::params::{Kind, PARAMS};

fn canonical() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    (
        prop::sample::select(vec!["off", "on", "reboot", "status"]),
        "[a-z][a-z0-9-]{0,12}",
        prop::option::of("[a-z][a-z0-9]{0,8}"),
        prop::option::of(2u32..600),
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

/// Values a hostile or careless configuration may give a numeric option.
fn numeric_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|f| f.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        (0u64..100_000_000).prop_map(|n| format!("{}", n as f64 / 1_000_000.0)),
        any::<i64>().prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "0",
            "0.3",
            "0.5",
            "1e-9",
            "1.4999",
            "1.5",
            "-0",
            "-1",
            "1e300",
            "inf",
            "-inf",
            "NaN",
            "",
            " ",
            "1s",
            "86400",
            "86400.0001",
            "4294967296",
            "9223372036854775808",
            "0x10",
            "1_000",
        ])
        .prop_map(str::to_string),
        "[0-9.eE+-]{0,12}",
        ".{0,12}",
    ]
}

proptest! {
    /// No value of any numeric option (and of `FENCE_TIMEOUT`) makes the parser or the time
    /// arithmetic that follows it panic; an accepted `fence_timeout` always leaves the watchers a
    /// working execution budget.
    #[test]
    fn no_numeric_value_panics_and_accepted_timeouts_work(
        values in prop::collection::vec(numeric_text(), 16),
        env_timeout in prop::option::of(numeric_text()),
    ) {
        let numeric: Vec<&str> = PARAMS
            .iter()
            .filter(|p| !p.deprecated && matches!(p.kind, Kind::Second | Kind::Integer))
            .map(|p| p.name)
            .collect();
        prop_assert!(numeric.len() >= 10 && numeric.len() <= values.len());
        let text: String = numeric.iter().zip(&values).map(|(k, v)| format!("{k}={v}\n")).collect();
        let given = from_stdin(&format!("action=off\nplug=n1\n{text}"));
        let env = |k: &str| (k == "FENCE_TIMEOUT").then(|| env_timeout.clone()).flatten();
        // Each option alone too, so that one bad value does not hide another's panic.
        for (k, v) in numeric.iter().zip(&values) {
            let _ = Options::resolve(&from_stdin(&format!("{k}={v}\n")), env);
        }
        if let Ok(o) = Options::resolve(&given, env) {
            let start = Start { instant: std::time::Instant::now(), boot: ha::os::clock::BootTime::now() };
            let (give_up, deadline) = o.timing(start);
            prop_assert!(give_up >= start.instant + o.delay + std::time::Duration::from_millis(1500));
            prop_assert!(deadline.0 >= start.boot.after(o.delay + ha::spool::decide::MIN_EXECUTION_BUDGET).0);
            prop_assert!(ha::spool::decide::execution_budget(o.fence_timeout) >= ha::spool::decide::MIN_EXECUTION_BUDGET);
        }
    }

    /// Only `action` decides the action: an `option=` line anywhere, with any value, changes nothing.
    #[test]
    fn an_option_line_never_changes_the_action(
        action in prop::sample::select(vec!["off", "on", "reboot", "status", "monitor", "list", "validate-all"]),
        option in prop::sample::select(vec!["off", "reboot", "on", "OFF"]),
        before in any::<bool>(),
    ) {
        let text = if before { format!("option={option}\naction={action}\n") } else { format!("action={action}\noption={option}\n") };
        let o = Options::resolve(&from_stdin(&text), |_| None).unwrap();
        prop_assert_eq!(o.action, action);
    }
}
