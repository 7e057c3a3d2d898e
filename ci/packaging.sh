#!/usr/bin/env bash
# CI: the packaging. The static release binaries (checked: no shared library, RHEL 8's kernel is
# enough, no NSS look-ups), the RPM from them (rpmbuild), the installed unit checked by
# systemd-analyze verify, the logrotate configuration parsed.
set -euo pipefail
cd "$(dirname "$0")/.."

make build
packaging/check-static.sh
make rpm
rpm=$(ls target/rpm/RPMS/x86_64/gfs2-fencing-*.rpm)
rpm -qlp "$rpm" | grep -x /usr/sbin/fence_gfs2_recorder >/dev/null
echo "built $rpm"

# The upgrade scriptlet (%posttrans), as rpm runs it, against a stand-in for systemctl written from
# its documented behaviour (systemd isn't PID 1 here): `list-units --type=service --state=running
# --plain --no-legend PATTERN` prints one line per running unit (UNIT LOAD ACTIVE SUB DESCRIPTION);
# `try-restart UNIT` restarts a running unit and, for Type=notify, returns once the new process has
# sent READY=1. Every running watcher must be restarted, one at a time, in instance order.
stand_in=$(mktemp -d)
cat > "$stand_in/systemctl" <<'STANDIN'
#!/bin/sh
case "$1" in
    list-units) printf '%s loaded active running watcher\n' gfs2-fence-watcher@10.service \
        gfs2-fence-watcher@2.service gfs2-fence-watcher@1.service ;;
    try-restart) echo "stop $2" >> "$STANDIN_LOG"; sleep 0.2; echo "ready $2" >> "$STANDIN_LOG"
        [ "$2" != gfs2-fence-watcher@2.service ] ;;
esac
STANDIN
chmod +x "$stand_in/systemctl"
rpm -qp --qf '%{POSTTRANS}' "$rpm" > "$stand_in/posttrans.sh"
STANDIN_LOG=$stand_in/calls PATH=$stand_in:$PATH sh -e "$stand_in/posttrans.sh" 2> "$stand_in/stderr"
expected='stop gfs2-fence-watcher@1.service
ready gfs2-fence-watcher@1.service
stop gfs2-fence-watcher@2.service
ready gfs2-fence-watcher@2.service
stop gfs2-fence-watcher@10.service
ready gfs2-fence-watcher@10.service'
[ "$(cat "$stand_in/calls")" = "$expected" ] || { echo "%posttrans restarted: $(cat "$stand_in/calls")" >&2; exit 1; }
grep -q 'restarting gfs2-fence-watcher@2.service failed' "$stand_in/stderr" \
    || { echo "%posttrans did not report the failed restart: $(cat "$stand_in/stderr")" >&2; exit 1; }
rm -rf "$stand_in"
echo "%posttrans: running watchers restarted one at a time in instance order, a failed restart reported"

root=target/rpm/root
unit=$(mktemp -d)/gfs2-fence-watcher@.service
sed "s|ExecStart=/usr/bin/gfs2-fence-watcher|ExecStart=$PWD/$root/usr/bin/gfs2-fence-watcher|" \
    "$root/usr/lib/systemd/system/gfs2-fence-watcher@.service" > "$unit"
findings=$(systemd-analyze verify --man=no "${unit%@.service}@1.service" 2>&1 || true)
if [ -n "$findings" ]; then
    echo "systemd-analyze verify: $findings" >&2
    exit 1
fi
echo "systemd-analyze verify: gfs2-fence-watcher@.service OK"

logrotate -d systemd/gfs2-fencing.logrotate >/dev/null 2>&1 || { logrotate -d systemd/gfs2-fencing.logrotate; exit 1; }
echo "logrotate: configuration parses"

# The installed README's links into docs/ resolve, and the examples are there.
doc=$root/usr/share/doc/gfs2-fencing
for link in $(grep -o '](docs/[A-Z]*\.md)' README.md | sed 's/](\(.*\))/\1/' | sort -u); do
    [ -f "$doc/$link" ] || { echo "installed README links to $link, which is not installed" >&2; exit 1; }
done
for example in watcher.json gfs2-fence-watcher.sysconfig; do
    [ -f "$doc/examples/$example" ] || { echo "example $example is not installed" >&2; exit 1; }
done
for file in prometheus/gfs2-fencing.rules.yml prometheus/gfs2-fencing.rules.test.yml prometheus/prometheus.yml \
    grafana/gfs2-fencing.json; do
    [ -f "$doc/$file" ] || { echo "$file is not installed" >&2; exit 1; }
done
# The installed rules pass their installed unit tests (as an operator would run them).
if command -v promtool >/dev/null; then
    (cd "$doc/prometheus" && promtool test rules gfs2-fencing.rules.test.yml >/dev/null)
fi
echo "installed documentation: README links resolve, examples, rules and dashboard present"
