//! `gfs2-fence-test-executor`: see `watcher::test_executor`.

fn main() -> std::process::ExitCode {
    watcher::test_executor::run()
}
