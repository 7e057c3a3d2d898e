#!/bin/sh
# Checks the release binaries `make build` made: each is statically linked (no ELF interpreter, no
# shared library needed), so it runs on RHEL 8 (glibc 2.28) and later whatever C library built it;
# its ELF note, if any, asks for no kernel newer than RHEL 8's 4.18; it defines none of the NSS entry
# points (user, group and host look-ups), which a static C library cannot serve reliably; and it
# runs here. The agent comes from its musl build, the others from the glibc one.
#   packaging/check-static.sh [DIR [AGENT_DIR]]
#       (defaults target/x86_64-unknown-linux-gnu/release, target/x86_64-unknown-linux-musl/release)
set -eu
cd "$(dirname "$0")/.."
dir=${1:-target/x86_64-unknown-linux-gnu/release}
agent_dir=${2:-target/x86_64-unknown-linux-musl/release}
status=0
fail() { echo "$1: $2" >&2; status=1; }
for f in "$agent_dir/fence_gfs2_recorder" "$dir/gfs2-fence-watcher" "$dir/gfs2-fence-events" "$dir/gfs2-fence-alert"; do
    b=$(basename "$f")
    before=$status
    [ -x "$f" ] || { fail "$f" "missing (run make build)"; continue; }
    if readelf -lW "$f" | grep -q 'INTERP' || readelf -dW "$f" | grep -q '(NEEDED)'; then
        fail "$b" "dynamically linked: $(readelf -dW "$f" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"
        continue
    fi
    kernel=$(readelf -nW "$f" | sed -n 's/.*OS: Linux, ABI: \([0-9.]*\).*/\1/p')
    if [ -n "$kernel" ] && [ "$(printf '%s\n4.18\n' "$kernel" | sort -V | tail -n 1)" != "4.18" ]; then
        fail "$b" "needs Linux $kernel, newer than RHEL 8's 4.18"
    fi
    nss=$(nm "$f" | awk '$2 == "T" || $2 == "W" { print $3 }' \
        | grep -E '^(getpw(nam|uid|ent)|getgr(nam|gid|ent)|getaddrinfo$|gethostby|getservby|getspnam|initgroups$)' | tr '\n' ' ' || true)
    [ -z "$nss" ] || fail "$b" "uses NSS look-ups a static C library cannot serve: $nss"
    "$f" --version >/dev/null 2>&1 || "$f" -V >/dev/null 2>&1 || fail "$b" "does not run here"
    [ "$status" != "$before" ] || echo "$b: static, Linux >= ${kernel:-?}, no NSS look-ups: runs on RHEL 8"
done
exit $status
