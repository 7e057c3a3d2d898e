#!/usr/bin/env bash
# A real cluster on one machine: a rabbit and four compute nodes of the host's Pacemaker and corosync,
# each node in its own namespaces, compute nodes lost (a frozen corosync, a cut link, three at once),
# fenced through fence_gfs2_recorder and our watchers (or the second level) or nnf-sos's stand-in,
# ended for real, restarted and rejoined; the rabbit upgraded from the previous build while it
# fences. Everything runs inside new PID, network and mount namespaces (ci/cluster/lab.sh): no
# address, process, mount or file of it outlives the run, whatever fails; only its work directory in
# /tmp, removed at the end unless KEEP=1. Needs root and the Pacemaker packages; runs only with
# GFS2_CLUSTER_SUITE=1 (.ci/run sets it). Scenarios by name: ci/cluster-suite.sh lost (see lab.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${GFS2_CLUSTER_SUITE:-}" != 1 ]; then
    echo "cluster suite: skipped (set GFS2_CLUSTER_SUITE=1 on a root machine with pacemaker and corosync to run it)"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "cluster suite: needs root" >&2; exit 1; }
BIN=${BIN:-target/debug}
case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
# The previous build, for the rolling upgrade (built once if missing: ci/old-build.sh).
if [ -z "${OLD_BIN:-}" ] && { [ $# = 0 ] || [[ " $* " = *" upgrade "* ]]; }; then
    OLD_BIN=$(ci/old-build.sh)
fi
export OLD_BIN=${OLD_BIN:-}
LAB=$(mktemp -d /tmp/gfs2-cluster-suite.XXXXXX)
# Traversable, so that the daemons running as hacluster reach their directories in it.
chmod 0711 "$LAB"
finish() { if [ "${KEEP:-}" = 1 ]; then echo "cluster suite: work files kept in $LAB"; else rm -rf "$LAB"; fi; }
trap finish EXIT
started=$SECONDS
rc=0
unshare --pid --net --mount --fork --kill-child --mount-proc --propagation private bash ci/cluster/lab.sh "$LAB" "$BIN" "$@" || rc=$?
echo "cluster suite: $((SECONDS - started)) s"
exit "$rc"
