//! `fence-bench`: see `proptest_suites::bench`. Prints one table with the machine it ran on.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cfg = proptest_suites::bench::Config::parse();
    match proptest_suites::bench::run(&cfg) {
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
