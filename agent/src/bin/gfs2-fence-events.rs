//! `gfs2-fence-events`: see `agent::events`.

use std::process::ExitCode;

fn main() -> ExitCode {
    match agent::events::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gfs2-fence-events: {e}");
            ExitCode::from(2)
        }
    }
}
