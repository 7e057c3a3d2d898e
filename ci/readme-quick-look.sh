#!/usr/bin/env bash
# The README's "Quick look at a fence by hand", run twice exactly as written (its paths under /tmp
# are removed before and after): it must work on a fresh clone and again on the files it left.
set -euo pipefail
cd "$(dirname "$0")/.."

block=$(awk '/^## Quick look at a fence by hand/ { found = 1 } found && /^```sh$/ { inside = 1; next }
             inside && /^```$/ { exit } inside' README.md)
[ -n "$block" ] || { echo "README has no quick look block" >&2; exit 1; }
clean() { rm -rf /tmp/gfs2-spool /tmp/gfs2-logs /tmp/gfs2-watcher.log /tmp/gfs2-ledger; }
clean
trap clean EXIT
for run in 1 2; do
    out=$(bash -euo pipefail -c "$block" 2>&1) || { echo "quick look, run $run, failed:" >&2; echo "$out" >&2; exit 1; }
    grep -q '^Success: Rebooted$' <<<"$out" || { echo "quick look, run $run: no 'Success: Rebooted' in:" >&2; echo "$out" >&2; exit 1; }
    # kill %1 returned at once; the watcher is gone before the next run starts its own.
    for _ in $(seq 100); do pgrep -f 'gfs2-fence-watcher run --spool-dir /tmp/gfs2-spool' >/dev/null || break; sleep 0.1; done
done
[ "$(grep -c 'STATUS=completed' /tmp/gfs2-logs/fence-events-readable.log)" = 2 ] ||
    { echo "quick look: two runs should have recorded two completed fences" >&2; exit 1; }
echo "README quick look: ran twice as written"
