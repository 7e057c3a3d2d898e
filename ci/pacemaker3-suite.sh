#!/usr/bin/env bash
# The project's Pacemaker suites on Pacemaker 3.0: Debian 13's pacemaker 3.0.0, corosync 3.1.9 and
# fence-agents 4.16, in a Debian 13 root that debootstrap makes from Debian's packages (minbase plus
# what the suites run; trixie splits fence-agents, and fence-agents-common has metadata.rng and
# fencing.py). The root is kept between runs on one machine (GFS2_DEBIAN13_ROOT, default
# /var/cache/gfs2-fencing-ci/debian13) and made anew when missing, unfinished or made for another
# package list. The suite runs chrooted there inside private mount, network, UTS, IPC and PID
# namespaces: its corosync and Pacemaker cannot meet the host's (libqb's abstract sockets live in the
# network namespace), its /run, /dev/shm and /tmp are its own, and every process it starts dies with
# the namespace's first process. The repository is bind-mounted at /src; the binaries are those
# built on the host (BIN, default target/debug). With KEEP=1 the suite's /tmp is a directory of the
# host's /tmp, kept (with the suite's own work files) after the run for a look at what failed.
# Needs root; runs only with GFS2_PACEMAKER_SUITE=1.
# Usage: ci/pacemaker3-suite.sh                  ci/pacemaker-suite.sh (the agent and one node)
#        ci/pacemaker3-suite.sh cluster [SCENARIO...]   ci/cluster-suite.sh (five nodes; its
#                                                 previous build made on the host first)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${GFS2_PACEMAKER_SUITE:-}" != 1 ]; then
    echo "pacemaker 3.0 suite: skipped (set GFS2_PACEMAKER_SUITE=1 on a disposable root machine to run it)"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "pacemaker 3.0 suite: needs root" >&2; exit 1; }

ROOT=${GFS2_DEBIAN13_ROOT:-/var/cache/gfs2-fencing-ci/debian13}
PACKAGES=pacemaker,pacemaker-cli-utils,corosync,libxml2-utils,python3,procps,fence-agents-common,iproute2
BIN=${BIN:-target/debug}
case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
case "$BIN" in "$PWD"/*) ;; *) echo "BIN must be inside the repository (it is bind-mounted at /src)" >&2; exit 1 ;; esac
SUITE=ci/pacemaker-suite.sh OLD_BIN=
if [ "${1:-}" = cluster ]; then
    shift
    SUITE="ci/cluster-suite.sh $*"
    # Built here (the root has no cargo), inside the repository, so the root sees it under /src.
    if [ $# = 0 ] || [[ " $* " = *" upgrade "* ]]; then OLD_BIN=$(ci/old-build.sh); fi
fi

# The Debian mirror this machine's apt uses (deb822 sources first, then the one-line format).
mirror() {
    local m
    m=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$m" ] || m=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
    echo "${m:?no Debian mirror found in the apt sources}"
}

if [ "$(cat "$ROOT/.gfs2-packages" 2>/dev/null)" != "$PACKAGES" ]; then
    echo "== making the Debian 13 root in $ROOT (debootstrap trixie, kept for later runs)"
    mkdir -p "$(dirname "$ROOT")"
    rm -rf "$ROOT.new"
    SECONDS=0
    if ! debootstrap --variant=minbase --include="$PACKAGES" trixie "$ROOT.new" "$(mirror)" >"$ROOT.log" 2>&1; then
        tail -n 30 "$ROOT.log"
        echo "pacemaker 3.0 suite: debootstrap failed (log: $ROOT.log)" >&2
        exit 1
    fi
    echo "$PACKAGES" >"$ROOT.new/.gfs2-packages"
    rm -rf "$ROOT"
    mv "$ROOT.new" "$ROOT"
    echo "   made in ${SECONDS}s ($(du -sh "$ROOT" | cut -f1))"
else
    echo "== the Debian 13 root in $ROOT (kept from an earlier run)"
fi
chroot "$ROOT" dpkg-query -W -f '   ${Package} ${Version}\n' pacemaker corosync fence-agents-common
KEPT=
if [ "${KEEP:-}" = 1 ]; then
    KEPT=$(mktemp -d /tmp/gfs2-pacemaker3.XXXXXX)
    chmod 1777 "$KEPT"
    echo "   the suite's /tmp is $KEPT (KEEP=1: kept after the run)"
fi

# In the namespaces: loopback up, host name node1, the root bind-mounted on itself, its own /proc,
# /dev (the host's devices, a private /dev/shm), /run and /tmp, the repository at /src; then the
# suite, chrooted.
unshare --mount --net --uts --ipc --pid --fork --propagation private \
    bash -euo pipefail -c '
        ROOT=$1 SRC=$2 BIN=$3 OLD_BIN=$4 KEPT=$5 SUITE=$6
        ip link set lo up
        hostname node1
        # The root a mount of its own: inside the chroot, / is then a mount point, which a suite
        # that makes namespaces of its own (unshare --propagation private) needs.
        mount --bind "$ROOT" "$ROOT"
        mount -t proc proc "$ROOT/proc"
        mount --rbind /dev "$ROOT/dev"
        mount -t tmpfs -o mode=1777 tmpfs "$ROOT/dev/shm"
        mount -t tmpfs -o mode=0755 tmpfs "$ROOT/run"
        if [ -n "$KEPT" ]; then mount --bind "$KEPT" "$ROOT/tmp"; else mount -t tmpfs -o mode=1777 tmpfs "$ROOT/tmp"; fi
        mkdir -p "$ROOT/src"
        mount --bind "$SRC" "$ROOT/src"
        [ -z "$OLD_BIN" ] || OLD_BIN=/src/${OLD_BIN#"$SRC"/}
        exec chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
            GFS2_PACEMAKER_SUITE=1 GFS2_CLUSTER_SUITE=1 BIN="/src/${BIN#"$SRC"/}" OLD_BIN="$OLD_BIN" KEEP="${KEEP:-}" \
            /bin/bash -c "cd /src && $SUITE"
    ' pacemaker3 "$ROOT" "$PWD" "$BIN" "$OLD_BIN" "$KEPT" "$SUITE"
