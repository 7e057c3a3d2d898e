//! `gfs2-fence-test-executor`: see `harness::test_executor`.

fn main() -> std::process::ExitCode {
    harness::test_executor::run()
}
