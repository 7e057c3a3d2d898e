//! How a fence's GFS2 file systems were found, as the request and every fence record carry it: the
//! method (`snapshot`, `live`, `disabled`), the snapshot's time and age or live discovery's
//! duration, and what each discovery [`Source`] said or why it failed. A format only: the sources
//! themselves are `discovery`'s.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A discovery source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Kubernetes / NNF custom resources through `kubectl`.
    Kubernetes,
    /// DLM lockspaces through `dlm_tool`.
    Dlm,
    /// Pacemaker's CIB through `cibadmin --query`.
    Cib,
}

impl Source {
    /// Every source, in the order they are reported.
    pub const ALL: [Source; 3] = [Source::Kubernetes, Source::Dlm, Source::Cib];

    /// The name used in options, files and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Kubernetes => "kubernetes",
            Source::Dlm => "dlm",
            Source::Cib => "cib",
        }
    }

    /// Parses a comma-separated list (`kubernetes,dlm,cib`; `k8s`/`nnf` and `pacemaker` are
    /// accepted aliases; empty means none).
    pub fn parse_list(s: &str) -> Result<BTreeSet<Source>, String> {
        let mut set = BTreeSet::new();
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let source = match word.to_ascii_lowercase().as_str() {
                "kubernetes" | "k8s" | "nnf" | "kubectl" => Source::Kubernetes,
                "dlm" => Source::Dlm,
                "cib" | "pacemaker" => Source::Cib,
                _ => return Err(format!("unknown discovery source {word:?} (expected kubernetes, dlm or cib)")),
            };
            set.insert(source);
        }
        Ok(set)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a fence's file systems were found: goes into the request and every log record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Provenance {
    /// `snapshot`, `live` or `disabled`.
    pub method: String,
    /// When the snapshot was taken (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken: Option<String>,
    /// The snapshot's age when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
    /// Live discovery's duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// What each source said about the node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_source: BTreeMap<Source, Vec<String>>,
    /// Sources that failed, and why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<Source, String>,
}

impl Provenance {
    /// Discovery switched off.
    pub fn disabled() -> Provenance {
        Provenance { method: "disabled".into(), ..Provenance::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_lists_parse_with_aliases_and_reject_unknown_names() {
        assert_eq!(Source::parse_list("kubernetes, dlm,cib").unwrap().len(), 3);
        assert_eq!(Source::parse_list("nnf,pacemaker").unwrap(), BTreeSet::from([Source::Kubernetes, Source::Cib]));
        assert!(Source::parse_list("").unwrap().is_empty());
        assert!(Source::parse_list("dlm,ldap").unwrap_err().contains("\"ldap\""));
    }
}
