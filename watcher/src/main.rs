//! `gfs2-fence-watcher`: see the `watcher` library.

use std::process::ExitCode;

fn main() -> ExitCode {
    match watcher::cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gfs2-fence-watcher: {e}");
            ExitCode::FAILURE
        }
    }
}
