//! The fence-agents stdin protocol: `key=value` lines.
//!
//! Parsing follows `FenceAgentAPI.md` and what fencing.py accepts: leading white space is stripped,
//! blank lines and `#` comments are skipped, the value runs from the first `=` to the end of the line
//! (trailing white space and one pair of surrounding quotes removed), the last value of a repeated key
//! wins, and `-` and `_` in keys are interchangeable (keys are normalised to `_`). Aliases (`port` for
//! `plug`, `option` for `action`) are the caller's business. The same module renders the lines the
//! watcher sends to fence commands.

use std::collections::BTreeMap;

/// Options read from stdin, with the lines that could not be used.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ParsedArgs {
    /// Normalised key → last value.
    pub values: BTreeMap<String, String>,
    /// Keys in the order they first appeared (for warnings about unknown keys).
    pub order: Vec<String>,
    /// Lines that were neither blank, comment nor `key=value`, with their 1-based line numbers.
    pub malformed: Vec<(usize, String)>,
}

/// Normalises a key: trims it and turns `-` into `_`.
pub fn normalize_key(key: &str) -> String {
    key.trim().replace('-', "_")
}

fn unquote(v: &str) -> &str {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

/// Parses stdin text.
pub fn parse(text: &str) -> ParsedArgs {
    let mut out = ParsedArgs::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            out.malformed.push((n + 1, raw.to_string()));
            continue;
        };
        let key = normalize_key(k);
        if key.is_empty() {
            out.malformed.push((n + 1, raw.to_string()));
            continue;
        }
        let value = unquote(v.trim_end()).to_string();
        if !out.values.contains_key(&key) {
            out.order.push(key.clone());
        }
        out.values.insert(key, value);
    }
    out
}

/// Why a key or value cannot be sent on the protocol.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("option {key:?} cannot be sent to a fence agent: {why}")]
pub struct RenderError {
    /// The offending key.
    pub key: String,
    /// What is wrong.
    pub why: &'static str,
}

/// Renders `key=value` lines. Keys must be non-empty without `=`, white space or newlines; values
/// must not contain newlines.
pub fn render<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<String, RenderError> {
    let mut s = String::new();
    for (k, v) in pairs {
        if k.is_empty() || k.contains(['=', '\n', '\r', ' ', '\t']) {
            return Err(RenderError { key: k.to_string(), why: "invalid key" });
        }
        if v.contains(['\n', '\r']) {
            return Err(RenderError { key: k.to_string(), why: "the value contains a newline" });
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
        s.push('\n');
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_pacemaker_and_people_send() {
        let p = parse("# comment\n\n  action=reboot\nport=node2\nnodename=node2\npower-wait=\"3\"\nx='a=b'\nbroken\nplug=a\nplug=b\r\n");
        assert_eq!(p.values["action"], "reboot");
        assert_eq!(p.values["power_wait"], "3");
        assert_eq!(p.values["x"], "a=b");
        assert_eq!(p.values["plug"], "b");
        assert_eq!(p.malformed, vec![(8, "broken".to_string())]);
        assert_eq!(p.order, ["action", "port", "nodename", "power_wait", "x", "plug"]);
    }

    #[test]
    fn renders_and_round_trips() {
        let s = render([("action", "off"), ("plug", "n1")]).unwrap();
        assert_eq!(s, "action=off\nplug=n1\n");
        assert_eq!(parse(&s).values["plug"], "n1");
        assert!(render([("a", "x\ny")]).is_err());
        assert!(render([("a b", "x")]).is_err());
    }
}
