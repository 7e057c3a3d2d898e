//! `nnf-sos-standin`: see `proptest_suites::nnf_standin`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cfg = proptest_suites::nnf_standin::Config::parse();
    match proptest_suites::nnf_standin::run(&cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nnf-sos-standin: {e}");
            ExitCode::FAILURE
        }
    }
}
