//! `kill-watcher`: see `proptest_suites::chaos`. Prints one table, writes the JSON summary, exits
//! non-zero on any lost, unexpected, wrong answer, unexplained duplicate or leftover.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cfg = proptest_suites::chaos::Config::parse();
    match proptest_suites::chaos::run(&cfg) {
        Ok(summary) => {
            print!("{}", proptest_suites::chaos::analysis::table(&summary));
            if let Some(path) = &cfg.summary {
                let json = serde_json::to_vec_pretty(&summary).expect("the summary serialises");
                if let Err(e) = std::fs::write(path, json) {
                    eprintln!("kill-watcher: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            if summary.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("kill-watcher: {e}");
            ExitCode::from(2)
        }
    }
}
