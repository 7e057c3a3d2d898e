#!/bin/sh
# Release binaries that run on RHEL 8 (glibc 2.28), whatever the build machine's glibc: cargo
# zigbuild links against glibc 2.28's symbol versions with zig (ziglang from PyPI). Then checks
# with objdump that no binary needs a symbol newer than GLIBC_2.28.
#   packaging/build-el8.sh            # binaries in target/x86_64-unknown-linux-gnu/release
#   make rpm RELEASE=target/x86_64-unknown-linux-gnu/release
set -eu
cd "$(dirname "$0")/.."
python3 -m ziglang version >/dev/null 2>&1 || python3 -m pip install --quiet ziglang || python3 -m pip install --quiet --break-system-packages ziglang
command -v cargo-zigbuild >/dev/null 2>&1 || cargo install --locked --quiet cargo-zigbuild
cargo zigbuild --release --target x86_64-unknown-linux-gnu.2.28 -p fence-gfs2-recorder -p gfs2-fence-watcher --bins
out=target/x86_64-unknown-linux-gnu/release
status=0
for b in fence_gfs2_recorder gfs2-fence-watcher gfs2-fence-events gfs2-fence-alert; do
    newest=$(objdump -T "$out/$b" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
    if [ "$(printf '%s\n2.28\n' "$newest" | sort -V | tail -n 1)" = "2.28" ]; then
        echo "$b: newest glibc symbol GLIBC_$newest (<= 2.28): runs on RHEL 8"
    else
        echo "$b: needs GLIBC_$newest, newer than RHEL 8's 2.28" >&2
        status=1
    fi
done
exit $status
