//! `gfs2-fence-alert`: a Pacemaker alert agent that hands fencing alerts from every fence device to
//! the gfs2-fencing audit trail (see `ha::audit::alert`). Configure it with
//! `pcs alert create path=/usr/libexec/gfs2-fencing/gfs2-fence-alert id=gfs2-fence-audit` and
//! `pcs alert recipient add gfs2-fence-audit value=/run/gfs2-fencing-alerts`.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "Usage: gfs2-fence-alert (run by Pacemaker as an alert agent, options in CRM_alert_* variables)

Hands every fencing alert of the cluster, by any fence device, to the gfs2-fencing audit trail: the
leader watcher appends it to the tamper-evident chain. Other alerts are ignored.

  pcs alert create path=/usr/libexec/gfs2-fencing/gfs2-fence-alert id=gfs2-fence-audit
  pcs alert recipient add gfs2-fence-audit value=/run/gfs2-fencing-alerts

Reads: CRM_alert_kind (only \"fencing\" is recorded), CRM_alert_node, CRM_alert_task, CRM_alert_rc,
CRM_alert_desc, CRM_alert_timestamp, CRM_alert_recipient (the drop directory; default
/run/gfs2-fencing-alerts). Options: -h, --help; -V, --version.
";

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("gfs2-fence-alert {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("gfs2-fence-alert: unknown argument {other:?}; Pacemaker passes none (see --help)");
            return ExitCode::FAILURE;
        }
    }
    let host = ha::os::host::name();
    let alert = match ha::audit::alert::Alert::from_env(std::env::vars(), ha::os::clock::rfc3339_now(), host) {
        Ok(a) => a,
        Err(ha::audit::alert::AlertError::NotFencing(_)) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gfs2-fence-alert: {e}; nothing recorded");
            return ExitCode::FAILURE;
        }
    };
    let dir = std::env::var("CRM_alert_recipient")
        .ok()
        .filter(|r| r.starts_with('/'))
        .map_or_else(|| PathBuf::from(ha::audit::alert::DEFAULT_DIR), PathBuf::from);
    match alert.drop_into(&dir) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "gfs2-fence-alert: cannot hand the fencing alert for {} to the audit trail: {e}; is {} there \
                 (tmpfiles.d creates it 1730 root:haclient)?",
                alert.node,
                dir.display()
            );
            ExitCode::FAILURE
        }
    }
}
