//! Whether the device's targets are compute nodes NNF knows: a target nnf-sos does not know under
//! that name is "fenced" with success and nothing detached, so `monitor` and `validate-all` say so
//! beforehand, as warnings (never a failure: discovery may be behind).
//!
//! The targets are the plugs the devices of this agent in the CIB can be asked to fence (their
//! `pcmk_host_list` entries and `pcmk_host_map` values; Pacemaker passes neither to the agent), and
//! the plug given, if any. The known compute nodes are those the Kubernetes source of GFS2 discovery
//! found (NnfNodeBlockStorage accesses): from the leader's `discovery.json` when it is of this boot
//! and that source succeeded, else, for `validate-all` only (it runs rarely; `monitor` runs every
//! interval), from a live discovery within `discovery_timeout`. Without either, nothing is said.
//! [`targets`] and [`unknown`] are pure. No locks.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ha::discovery::cib::nvpair;
use ha::discovery::run::{self, Tools};
use ha::discovery::snapshot;
use ha::protocol::provenance::Source;
use ha::spool::Spool;
use roxmltree::Document;

use crate::options::Options;

/// How long `cibadmin --query` may take.
const CIB_TIMEOUT: Duration = Duration::from_secs(5);

/// The plugs the devices of `agent` in the CIB `xml` fence.
pub fn targets(xml: &str, agent: &str) -> Result<BTreeSet<String>, String> {
    let doc = Document::parse(xml).map_err(|e| format!("the CIB is not XML: {e}"))?;
    let mut plugs = BTreeSet::new();
    let devices = doc.descendants().filter(|n| {
        n.has_tag_name("primitive") && n.attribute("class") == Some("stonith") && n.attribute("type") == Some(agent)
    });
    for d in devices {
        if let Some(list) = nvpair(d, "instance_attributes", "pcmk_host_list") {
            plugs.extend(list.split([' ', ',', ';', '\t']).filter(|s| !s.is_empty()).map(str::to_string));
        }
        if let Some(map) = nvpair(d, "instance_attributes", "pcmk_host_map") {
            for pair in map.split([';', ' ', ',']).filter(|s| !s.is_empty()) {
                let plug = pair.split_once([':', '=']).map_or(pair, |(_, plug)| plug);
                plugs.insert(plug.to_string());
            }
        }
    }
    Ok(plugs)
}

/// The targets `known` does not name, sorted.
pub fn unknown(targets: &BTreeSet<String>, known: &BTreeSet<String>) -> Vec<String> {
    targets.difference(known).cloned().collect()
}

/// The compute nodes Kubernetes discovery knows: the snapshot's, or (when `live`) a discovery's now.
fn known_nodes(opts: &Options, spool: &Spool, live: bool) -> Option<BTreeSet<String>> {
    if let Ok(Some(snap)) = snapshot::read(spool) {
        let of_this_boot = ha::os::clock::boot_id().ok().and_then(|b| snap.age(ha::os::clock::BootTime::now(), &b));
        if of_this_boot.is_some() && snap.sources.get(&Source::Kubernetes).is_some_and(|r| r.ok) {
            let nodes = snap.nodes.iter().filter(|(_, e)| e.sources.contains_key(&Source::Kubernetes));
            return Some(nodes.map(|(n, _)| n.clone()).collect());
        }
    }
    if !live || !opts.discovery || !opts.discovery_sources.contains(&Source::Kubernetes) {
        return None;
    }
    let tools = Tools {
        sources: [Source::Kubernetes].into(),
        kubectl: opts.kubectl_cmd.split_whitespace().map(str::to_string).collect(),
        kubeconfig: opts.kubeconfig.clone(),
    };
    let results = run::discover(&tools, opts.discovery_timeout);
    results.into_iter().find_map(|r| r.outcome.ok()).map(|found| found.nodes.into_keys().collect())
}

/// Warns about each target of this agent's devices (and `opts.plug`) that discovery does not know.
pub fn warn_unknown(opts: &Options, spool: &Spool, live: bool) {
    let Some(known) = known_nodes(opts, spool, live) else {
        tracing::debug!("no Kubernetes discovery to check the device's targets against");
        return;
    };
    let mut plugs = match run::run_tool(&["cibadmin".to_string()], &["--query"], Instant::now() + CIB_TIMEOUT) {
        Ok(xml) => targets(&String::from_utf8_lossy(&xml), crate::metadata::NAME).unwrap_or_else(|e| {
            tracing::debug!("{e}");
            BTreeSet::new()
        }),
        Err(e) => {
            tracing::debug!("no CIB to read the devices' targets from: {e}");
            BTreeSet::new()
        }
    };
    plugs.extend(opts.plug.iter().cloned());
    let unknown = unknown(&plugs, &known);
    if !unknown.is_empty() {
        tracing::warn!(
            "GFS2 discovery (Kubernetes) knows no compute node named {}: nnf-sos answers a fence of a name it does \
             not know with success, detaching nothing. Check pcmk_host_list/pcmk_host_map against the compute \
             nodes' names in NNF (kubectl get nnfnodeblockstorages -A -o yaml), unless these nodes use no GFS2 \
             storage from this rabbit",
            unknown.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_devices_targets_are_their_host_lists_and_mapped_plugs() {
        let xml = r#"<cib><configuration><resources>
          <primitive id="a" class="stonith" type="fence_gfs2_recorder"><instance_attributes id="i">
            <nvpair id="1" name="pcmk_host_list" value="c1 c2,c3"/></instance_attributes></primitive>
          <primitive id="b" class="stonith" type="fence_gfs2_recorder"><instance_attributes id="j">
            <nvpair id="2" name="pcmk_host_map" value="node4:c4;node5=c5 c6"/></instance_attributes></primitive>
          <primitive id="c" class="stonith" type="fence_ipmilan"><instance_attributes id="k">
            <nvpair id="3" name="pcmk_host_list" value="rabbit"/></instance_attributes></primitive>
        </resources></configuration></cib>"#;
        let t = targets(xml, "fence_gfs2_recorder").unwrap();
        assert_eq!(t.iter().map(String::as_str).collect::<Vec<_>>(), ["c1", "c2", "c3", "c4", "c5", "c6"]);
        let known: BTreeSet<String> = ["c1", "c2", "c3", "c4", "c6", "c9"].map(String::from).into();
        assert_eq!(unknown(&t, &known), ["c5"]);
    }
}
