//! `fence-bench`: see `harness::bench`. Prints one table with the machine it ran on.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cfg = harness::bench::Config::parse();
    match harness::bench::run(&cfg) {
        Ok(table) => {
            println!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fence-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
