//! `kill-watcher`: see `harness::chaos`. Prints one table, writes the JSON summary, exits
//! non-zero on any lost, unexpected, wrong answer, unexplained duplicate or leftover.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cfg = harness::chaos::Config::parse();
    match harness::chaos::run(&cfg) {
        Ok(summary) => {
            print!("{}", harness::chaos::analysis::table(&summary));
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
