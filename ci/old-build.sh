#!/usr/bin/env bash
# Prints the directory of the previous build's binaries, building them first if they are missing: the
# watchers and agent of commit a31b92f (spool format 1), which watcher/tests/integration/rolling_upgrade.rs and
# the cluster suite's upgrade scenario mix with this build; both run this script, the one recipe
# (target/old-builds/a31b92f, built from `git archive` of the commit with its own Cargo.lock, about
# 80 s once, under a lock, so whichever runs first builds for both). Needs a full clone (the commit
# must be in the history) and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=a31b92f
BASE=$PWD/target/old-builds/$OLD
BINS=$BASE/target/debug
mkdir -p "$BASE"
exec 9>"$BASE.lock"
flock 9
if [ ! -x "$BINS/gfs2-fence-watcher" ] || [ ! -x "$BINS/fence_gfs2_recorder" ]; then
    if [ ! -f "$BASE/src/Cargo.lock" ]; then
        rm -rf "$BASE/src"
        mkdir -p "$BASE/src"
        git archive --format=tar "$OLD" | tar -x -C "$BASE/src" \
            || { echo "old-build: commit $OLD is not in this clone's history (clone without --depth)" >&2; exit 1; }
    fi
    (cd "$BASE/src" && env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET_DIR \
        cargo build --locked --quiet --bins --target-dir "$BASE/target") >&2
fi
echo "$BINS"
