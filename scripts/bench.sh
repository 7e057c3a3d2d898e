#!/usr/bin/env bash
# `make bench`: fence-bench with its spools on tmpfs and, when it can, with one on ext4 as well (the
# --disk rows). Without a --disk in the arguments, run as root with mkfs.ext4 and loop devices, it
# makes a 1 GiB ext4 image, loop-mounts it for the run and removes it after; not root, it uses
# /var/tmp when that is on a disk file system; otherwise it says so and fence-bench reports the
# disk row as not measured.
set -euo pipefail
bench=$1
shift
if [[ " $* " != *" --disk "* ]]; then
    if [ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null && [ -e /dev/loop-control ]; then
        img=$(mktemp /tmp/fence-bench-ext4.XXXXXX)
        mnt=$(mktemp -d /tmp/fence-bench-ext4-mnt.XXXXXX)
        trap 'umount "$mnt" 2>/dev/null || true; rm -rf "$mnt" "$img"' EXIT
        truncate -s 1G "$img"
        mkfs.ext4 -q -F "$img"
        if mount -o loop "$img" "$mnt"; then
            "$bench" "$@" --disk "$mnt"
            exit
        fi
        echo "bench: cannot loop-mount an ext4 image here; the disk row is not measured" >&2
    else
        # Without root: /var/tmp, when it is on a disk file system.
        case $(stat -f -c %T /var/tmp 2>/dev/null) in
        ext2/ext3 | xfs | btrfs)
            "$bench" "$@" --disk /var/tmp
            exit
            ;;
        esac
        echo "bench: a disk spool needs root (a loop-mounted ext4 image), /var/tmp on a disk, or --disk DIR; the disk row is not measured" >&2
    fi
fi
"$bench" "$@"
