//! `gfs2-fence-events`: see `audit_tools`.

use std::process::ExitCode;

fn main() -> ExitCode {
    match audit_tools::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gfs2-fence-events: {e}");
            ExitCode::from(2)
        }
    }
}
