//! `fence_gfs2_recorder`: see the `agent` library.

use std::process::ExitCode;

fn main() -> ExitCode {
    match agent::run() {
        Ok(code) => code,
        Err(failure) => agent::report(&failure),
    }
}
