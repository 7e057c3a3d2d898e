//! Whether Pacemaker's `on` may unfence: read from the CIB, since Pacemaker passes a device's
//! parameters to the agent but never its meta attributes.
//!
//! With the meta attribute `provides=unfencing` Pacemaker runs `on` for a node when it joins, before
//! starting resources there. Without it, `on` also comes in the middle of a fence: a topology level
//! with several devices turns a reboot into `off` then `on` on every device of the level except those
//! with automatic unfencing, so an `on` that unfenced there would undo the fence it completes.
//! Unfencing at a join is safe only when the join proves the node rebooted since its fence: with
//! `fencing-reaction=panic` (`fence-reaction` before Pacemaker 3.0.2) a node told it was fenced
//! panics; with `stop`, the default, it only stops Pacemaker and keeps its GFS2 mounts.
//!
//! So `on` unfences only when every device of this agent that sets `allow_unfencing` carries
//! `provides=unfencing`, at least one does, and the cluster's fencing reaction is `panic`. The CIB is
//! read with `cibadmin --query` (which honours `CIB_file`); when it cannot be read, the unfence is
//! refused. [`check`] is the pure part. No locks.

use std::time::{Duration, Instant};

use ha::discovery::cib::nvpair;
use roxmltree::{Document, Node};

/// The parameter that lets `on` unfence.
pub const PARAM: &str = "allow_unfencing";

/// How long `cibadmin --query` may take.
const CIB_TIMEOUT: Duration = Duration::from_secs(10);

fn truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "yes" | "on" | "true" | "y")
}

/// Why the CIB `xml` does not allow `on` of the agent `agent` (`fence_gfs2_recorder`) to unfence,
/// or `Ok` with the devices that allow it.
pub fn check(xml: &str, agent: &str) -> Result<Vec<String>, String> {
    let doc = Document::parse(xml).map_err(|e| format!("the CIB is not XML: {e}"))?;
    let config = doc
        .root_element()
        .children()
        .find(|c| c.has_tag_name("configuration"))
        .ok_or("the CIB has no <configuration>")?;
    let devices: Vec<Node> = config
        .descendants()
        .filter(|n| n.has_tag_name("primitive"))
        .filter(|n| n.attribute("class") == Some("stonith") && n.attribute("type") == Some(agent))
        .filter(|n| nvpair(*n, "instance_attributes", PARAM).is_some_and(truthy))
        .collect();
    let id = |n: &Node| n.attribute("id").unwrap_or("(no id)").to_string();
    if devices.is_empty() {
        return Err(format!(
            "no {agent} device in the CIB sets {PARAM}; the unfence is not Pacemaker's configured unfencing"
        ));
    }
    let lacking: Vec<String> = devices
        .iter()
        .filter(|d| !nvpair(**d, "meta_attributes", "provides").is_some_and(|v| v.eq_ignore_ascii_case("unfencing")))
        .map(id)
        .collect();
    if !lacking.is_empty() {
        return Err(format!(
            "device {} sets {PARAM} without the meta attribute provides=unfencing: Pacemaker would then also run on \
             right after off when a topology level holds several devices, undoing the fence; add it (pcs stonith \
             update DEVICE meta provides=unfencing) or remove {PARAM}",
            lacking.join(", ")
        ));
    }
    let reaction = config.children().filter(|c| c.has_tag_name("crm_config")).find_map(|c| {
        ["fencing-reaction", "fence-reaction"].iter().find_map(|name| nvpair(c, "cluster_property_set", name))
    });
    if !reaction.is_some_and(|r| r.eq_ignore_ascii_case("panic")) {
        return Err(format!(
            "the cluster's fencing reaction is {}, not panic: a node that rejoins may never have rebooted since its \
             fence (with stop it keeps its GFS2 mounts and DLM lockspaces), so its storage must not come back at its \
             join; set it (pcs property set fencing-reaction=panic, or fence-reaction before Pacemaker 3.0.2) or \
             unfence by hand once the node is known to have rebooted (gfs2-fence-events unfence)",
            reaction.unwrap_or("stop (the default)")
        ));
    }
    Ok(devices.iter().map(id).collect())
}

/// Reads the CIB and [`check`]s it for `agent`.
pub fn by_pacemaker(agent: &str) -> Result<Vec<String>, String> {
    let out = ha::discovery::run::run_tool(&["cibadmin".to_string()], &["--query"], Instant::now() + CIB_TIMEOUT)
        .map_err(|e| format!("cannot read the CIB to check that unfencing is configured safely: {e}"))?;
    check(&String::from_utf8_lossy(&out), agent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cib(allow: &str, meta: &str, reaction: &str) -> String {
        format!(
            r#"<cib><configuration><crm_config><cluster_property_set id="o">{reaction}</cluster_property_set></crm_config>
            <resources><primitive id="nnf" class="stonith" type="fence_gfs2_recorder">
              <instance_attributes id="i"><nvpair id="i1" name="responder" value="nnf-sos"/>{allow}</instance_attributes>
              <meta_attributes id="m">{meta}</meta_attributes></primitive>
            <primitive id="other" class="stonith" type="fence_dummy"/></resources></configuration></cib>"#
        )
    }
    const ALLOW: &str = r#"<nvpair id="a" name="allow_unfencing" value="true"/>"#;
    const PROVIDES: &str = r#"<nvpair id="p" name="provides" value="unfencing"/>"#;
    const PANIC: &str = r#"<nvpair id="r" name="fence-reaction" value="panic"/>"#;

    #[test]
    fn on_unfences_only_with_provides_unfencing_and_the_panic_reaction() {
        assert_eq!(check(&cib(ALLOW, PROVIDES, PANIC), "fence_gfs2_recorder").unwrap(), ["nnf"]);
        let newer = PANIC.replace("fence-reaction", "fencing-reaction");
        assert!(check(&cib(ALLOW, PROVIDES, &newer), "fence_gfs2_recorder").is_ok());
        let e = check(&cib(ALLOW, "", PANIC), "fence_gfs2_recorder").unwrap_err();
        assert!(e.contains("nnf") && e.contains("provides=unfencing"), "{e}");
        let e = check(&cib(ALLOW, PROVIDES, ""), "fence_gfs2_recorder").unwrap_err();
        assert!(e.contains("stop (the default)"), "{e}");
        let stop = PANIC.replace("panic", "stop");
        assert!(check(&cib(ALLOW, PROVIDES, &stop), "fence_gfs2_recorder").is_err());
        let e = check(&cib("", PROVIDES, PANIC), "fence_gfs2_recorder").unwrap_err();
        assert!(e.contains("sets allow_unfencing"), "{e}");
        assert!(check("<cib", "fence_gfs2_recorder").is_err());
    }
}
