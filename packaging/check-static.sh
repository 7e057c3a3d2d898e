#!/bin/sh
# Checks the release binaries `make build` made: each is statically linked (no ELF interpreter, no
# shared library needed), so it runs on RHEL 8 (glibc 2.28) and later whatever glibc built it; its
# ELF note asks for no kernel newer than RHEL 8's 4.18; it defines none of glibc's NSS entry points
# (user, group and host look-ups), which a static glibc cannot serve reliably; and it runs here.
#   packaging/check-static.sh [DIR]        (default target/x86_64-unknown-linux-gnu/release)
set -eu
cd "$(dirname "$0")/.."
dir=${1:-target/x86_64-unknown-linux-gnu/release}
status=0
fail() { echo "$1: $2" >&2; status=1; }
for b in fence_gfs2_recorder gfs2-fence-watcher gfs2-fence-events gfs2-fence-alert; do
    f=$dir/$b
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
    [ -z "$nss" ] || fail "$b" "uses NSS look-ups a static glibc cannot serve: $nss"
    "$f" --version >/dev/null 2>&1 || "$f" -V >/dev/null 2>&1 || fail "$b" "does not run here"
    [ "$status" != "$before" ] || echo "$b: static, Linux >= ${kernel:-?}, no NSS look-ups: runs on RHEL 8"
done
exit $status
