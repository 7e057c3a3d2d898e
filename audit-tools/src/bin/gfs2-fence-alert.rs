//! `gfs2-fence-alert`: a Pacemaker alert agent that hands fencing alerts from every fence device to
//! the gfs2-fencing audit trail (see `ha::audit::alert`). Configure it with
//! `pcs alert create path=/usr/libexec/gfs2-fencing/gfs2-fence-alert id=gfs2-fence-audit` and
//! `pcs alert recipient add gfs2-fence-audit value=/run/gfs2-fencing-alerts`.

use std::path::PathBuf;
use std::process::ExitCode;

/// The command line: none (Pacemaker passes its options in `CRM_alert_*` variables); `--help`,
/// `--version` and the man page for people.
fn cli() -> clap::Command {
    clap::Command::new("gfs2-fence-alert")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Pacemaker alert agent handing fencing alerts to the gfs2-fencing audit trail")
        .long_about(
            "Pacemaker alert agent handing fencing alerts to the gfs2-fencing audit trail.\n\n\
             Run by Pacemaker for every alert, with its options in CRM_alert_* variables; records every \
             fencing alert of the cluster, by any fence device, and ignores the others: it drops the alert \
             into the recipient directory, and the leading gfs2-fence-watcher appends it to the \
             tamper-evident chain. Reads CRM_alert_kind (only \"fencing\" is recorded), CRM_alert_node, \
             CRM_alert_task, CRM_alert_rc, CRM_alert_desc, CRM_alert_timestamp and CRM_alert_recipient \
             (the drop directory; default /run/gfs2-fencing-alerts).",
        )
        .after_help(
            "Configure it once for the cluster:\n  \
             pcs alert create path=/usr/libexec/gfs2-fencing/gfs2-fence-alert id=gfs2-fence-audit\n  \
             pcs alert recipient add gfs2-fence-audit value=/run/gfs2-fencing-alerts",
        )
}

fn main() -> ExitCode {
    if ha::manpage::requested(std::env::args_os()) {
        print!("{}", ha::manpage::render(cli(), &MANPAGE));
        return ExitCode::SUCCESS;
    }
    if let Err(e) = cli().try_get_matches() {
        use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
        if matches!(e.kind(), DisplayHelp | DisplayVersion) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let given: Vec<String> = std::env::args().skip(1).collect();
        eprintln!("gfs2-fence-alert: unknown argument {:?}; Pacemaker passes none (see --help)", given.join(" "));
        return ExitCode::FAILURE;
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

/// What `gfs2-fence-alert`'s man page says beyond its options (`--generate man`, run by `make man`).
const MANPAGE: ha::manpage::Extra<'static> = ha::manpage::Extra {
    sections: &[
        (
            "Exit status",
            "0: the alert was handed over, or was not a fencing alert. 1: it could not be, and nothing \
             was recorded (the reason on stderr, which Pacemaker logs); or it was given an argument \
             (Pacemaker passes none).",
        ),
        (
            "Files",
            "/run/gfs2-fencing-alerts: the drop directory (mode 1730 root:haclient, made by \
             tmpfiles.d: Pacemaker's alert agents run as hacluster and may create files, not read \
             or remove them).",
        ),
        (
            "Example",
            "  pcs alert create id=gfs2-fence-audit \\\n    path=/usr/libexec/gfs2-fencing/gfs2-fence-alert\n  \
             pcs alert recipient add gfs2-fence-audit \\\n    value=/run/gfs2-fencing-alerts",
        ),
    ],
    see_also: &[
        "fence_gfs2_recorder(8)",
        "gfs2-fence-watcher(8)",
        "gfs2-fence-events(8)",
        "pcs(8)",
        "/usr/share/doc/gfs2-fencing/docs/operators/OPERATIONS.md",
    ],
};
