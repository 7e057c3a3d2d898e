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

# A page per installed program, each filled by man within 80 columns (nothing preformatted wider),
# none naming itself in SEE ALSO, each listed in the package.
for program in $(rpm -qlp "$rpm" | grep -E '^/usr/(s?bin|libexec/gfs2-fencing)/[^/]+$'); do
    name=$(basename "$program") page=target/man/$(basename "$program").8
    [ -s "$page" ] || { echo "$program has no man page ($page)" >&2; exit 1; }
    rpm -qlp "$rpm" | grep -q "^/usr/share/man/man8/$name.8" || { echo "$name.8 is not in the package" >&2; exit 1; }
    wide=$(MANWIDTH=80 man -l "$page" 2>/dev/null | awk 'length > 80')
    [ -z "$wide" ] || { echo "man $name at 80 columns has wider lines:" >&2; echo "$wide" >&2; exit 1; }
    [ "$(MANWIDTH=80 man -l "$page" 2>/dev/null | wc -l)" -gt 20 ] || { echo "man -l $page renders almost nothing" >&2; exit 1; }
    ! sed -n '/^\.SH "SEE ALSO"/,$p' "$page" | sed 's/\\-/-/g' | grep -q "$name(8)" \
        || { echo "man $name lists itself in SEE ALSO" >&2; exit 1; }
done
echo "man pages: one per installed program, within 80 columns, SEE ALSO right"

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

# The installed README's links into docs/ resolve; the examples, rules and dashboard are data, not
# documentation.
doc=$root/usr/share/doc/gfs2-fencing data=$root/usr/share/gfs2-fencing
for link in $(grep -o '](\(docs/[a-z]*/[A-Z]*\|CONTRIBUTING\)\.md)' README.md | sed 's/](\(.*\))/\1/' | sort -u); do
    [ -f "$doc/$link" ] || { echo "installed README links to $link, which is not installed" >&2; exit 1; }
done
SHIPPED="examples/watcher.json examples/gfs2-fence-watcher.sysconfig prometheus/gfs2-fencing.rules.yml
    prometheus/gfs2-fencing.rules.test.yml prometheus/prometheus.yml grafana/gfs2-fencing.json"
for file in $SHIPPED; do
    [ -f "$data/$file" ] || { echo "$file is not installed in /usr/share/gfs2-fencing" >&2; exit 1; }
done
# The installed rules pass their installed unit tests (as an operator would run them).
if command -v promtool >/dev/null; then
    (cd "$data/prometheus" && promtool test rules gfs2-fencing.rules.test.yml >/dev/null)
fi
echo "installed: README links resolve, examples, rules and dashboard present"

# An install without documentation (rpm --nodocs; dnf's tsflags=nodocs, common in images) into a
# scratch root keeps the rules, the dashboard and the examples, and the rule file the example
# Prometheus configuration names is there. (--nodeps --noscripts: the scratch root has no pacemaker and no
# shell; the scriptlets are checked above.)
scratch=$(mktemp -d)
rpm --root "$scratch" --initdb
rpm --root "$scratch" --install --nodocs --nodeps --noscripts "$rpm"
[ ! -e "$scratch/usr/share/doc/gfs2-fencing/README.md" ] \
    || { echo "rpm --nodocs installed the documentation: the check below would prove nothing" >&2; exit 1; }
for file in $SHIPPED; do
    [ -f "$scratch/usr/share/gfs2-fencing/$file" ] || { echo "rpm --nodocs dropped /usr/share/gfs2-fencing/$file" >&2; exit 1; }
done
for rules in $(sed -n '/^rule_files:/,/^[a-z]/s/^ *- *//p' "$scratch/usr/share/gfs2-fencing/prometheus/prometheus.yml"); do
    [ -f "$scratch$rules" ] || { echo "prometheus.yml names $rules, which rpm --nodocs did not install" >&2; exit 1; }
done
[ -x "$scratch/usr/sbin/fence_gfs2_recorder" ] || { echo "rpm --nodocs did not install the agent" >&2; exit 1; }
rm -rf "$scratch"
echo "rpm --nodocs: rules, dashboard and examples kept; prometheus.yml's rule file present"
