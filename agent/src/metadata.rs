//! The agent's self-description: fence-agents metadata XML (validated by `metadata.rng`) and the
//! `manpage` action's groff text, both generated from the parameter table.

use std::fmt::Write;

use crate::params::{getopt_mixed, ActionInfo, Kind, ACTIONS, PARAMS};

/// The agent's name, as devices name it in the CIB (`type`).
pub const NAME: &str = "fence_gfs2_recorder";
const SHORTDESC: &str = "Fence agent that records GFS2 fence events and fences through gfs2-fence-watcher";
const LONGDESC: &str = "fence_gfs2_recorder runs on the rabbit storage nodes of HPE Near Node Flash. \
For each fence action it records the event, with the GFS2 file systems involved, in three logs \
(fence-events.log, fence-events-readable.log, fence-events-detailed.jsonl), writes a request file into a \
local spool directory and waits for the response of its responder (the responder parameter): the \
gfs2-fence-watcher processes, which run the real fence command (fence_nnf, fence_ipmilan, ...), nnf-sos, \
which fences by removing the node's GFS2 storage, or another program speaking the file protocol. With no \
live watcher the fence fails at once, so that Pacemaker moves to the next fencing level.";
const VENDOR_URL: &str = "https://github.com/NearNodeFlash";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The metadata XML printed by `-o metadata`.
pub fn xml() -> String {
    let mut x = String::new();
    let _ = writeln!(x, "<?xml version=\"1.0\" ?>");
    let _ = writeln!(x, "<resource-agent name=\"{NAME}\" shortdesc=\"{}\" >", esc(SHORTDESC));
    let _ = writeln!(x, "<longdesc>{}</longdesc>", esc(LONGDESC));
    let _ = writeln!(x, "<vendor-url>{VENDOR_URL}</vendor-url>");
    let _ = writeln!(x, "<parameters>");
    for p in PARAMS {
        let mut attrs = format!("name=\"{}\" unique=\"0\" required=\"0\"", p.name);
        if p.deprecated {
            attrs.push_str(" deprecated=\"1\"");
        }
        if let Some(o) = p.obsoletes {
            let _ = write!(attrs, " obsoletes=\"{o}\"");
        }
        let _ = writeln!(x, "\t<parameter {attrs}>");
        let _ = writeln!(x, "\t\t<getopt mixed=\"{}\" />", esc(&getopt_mixed(p)));
        let default = p.default.map(|d| format!(" default=\"{}\"", esc(d))).unwrap_or_default();
        match p.kind {
            Kind::Select(values) => {
                let _ = writeln!(x, "\t\t<content type=\"select\"{default} >");
                for v in values {
                    let _ = writeln!(x, "\t\t\t<option value=\"{}\" />", esc(v));
                }
                let _ = writeln!(x, "\t\t</content>");
            }
            kind => {
                let _ = writeln!(x, "\t\t<content type=\"{}\"{default}  />", kind.as_str());
            }
        }
        let _ = writeln!(x, "\t\t<shortdesc lang=\"en\">{}</shortdesc>", esc(p.desc));
        let _ = writeln!(x, "\t</parameter>");
    }
    let _ = writeln!(x, "</parameters>");
    let _ = writeln!(x, "<actions>");
    for ActionInfo { name, automatic, .. } in ACTIONS {
        match automatic {
            Some(a) => {
                let _ = writeln!(x, "\t<action name=\"{name}\" automatic=\"{}\" />", u8::from(*a));
            }
            None => {
                let _ = writeln!(x, "\t<action name=\"{name}\" />");
            }
        }
    }
    let _ = writeln!(x, "</actions>");
    let _ = writeln!(x, "</resource-agent>");
    x
}

fn groff(s: &str) -> String {
    s.replace('\\', "\\\\").replace('-', "\\-")
}

/// The man page printed by `-o manpage` (groff, section 8).
pub fn manpage() -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        ".TH {} 8 \"\" \"gfs2-fencing {}\" \"System Administration\"",
        groff(NAME),
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(m, ".SH NAME\n{} \\- {}", groff(NAME), groff(SHORTDESC));
    let _ = writeln!(m, ".SH DESCRIPTION\n.P\n{}", groff(LONGDESC));
    let _ = writeln!(m, ".SH PARAMETERS");
    for p in PARAMS.iter().filter(|p| !p.deprecated) {
        let stop = if p.desc.ends_with('.') { "" } else { "." };
        let _ = writeln!(m, ".TP\n.B {}\n{}{stop}", groff(&getopt_mixed(p)), groff(p.desc));
        let _ = writeln!(m, "This parameter is always optional. On stdin: \\fB{}\\fP.", groff(p.name));
        if let Some(d) = p.default {
            let _ = writeln!(m, "(Default Value: \\fB{}\\fP)", groff(d));
        }
    }
    let _ = writeln!(m, ".SH ACTIONS");
    for a in ACTIONS {
        let _ = writeln!(m, ".TP\n\\fB{}\\fP\n{}", groff(a.name), groff(a.what));
    }
    let _ = writeln!(
        m,
        ".SH \"EXIT STATUS\"\n0 success (status: ON); 1 failure; 2 status: OFF.\n.SH \"SEE ALSO\"\ngfs2\\-fence\\-watcher(8), gfs2\\-fence\\-events(8), gfs2\\-fence\\-alert(8), stonith_admin(8), \
         pacemaker\\-fenced(7); /usr/share/doc/gfs2\\-fencing/docs/operators/DEPLOYMENT.md"
    );
    m
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_required_parameter_is_declared() {
        let x = super::xml();
        for name in [
            "action",
            "plug",
            "port",
            "nodename",
            "delay",
            "fence_timeout",
            "log_dir",
            "spool_dir",
            "no_gfs2_discovery",
            "discovery_timeout",
            "queue_priority",
            "power_timeout",
            "retry_on",
            "separator",
        ] {
            assert!(x.contains(&format!("<parameter name=\"{name}\"")), "{name} missing");
        }
        assert!(!x.contains("name=\"priority\""));
        assert!(x.contains("name=\"port\" unique=\"0\" required=\"0\" deprecated=\"1\""));
        assert!(super::manpage().contains(".SH PARAMETERS"));
    }
}
