//! `nnf-sos-standin`: see `harness::nnf_standin`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cfg = harness::nnf_standin::Config::parse();
    match harness::nnf_standin::run(&cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nnf-sos-standin: {e}");
            ExitCode::FAILURE
        }
    }
}
