#!/usr/bin/env bash
# One node of the cluster suite, run by ci/cluster/lab.sh inside the node's own network namespace and
# fresh mount, UTS and IPC namespaces (a compute node also in its own PID namespace, of which this
# script is the first process: ending it ends the node). Gives the node its hostname, a private /run
# and /dev/shm, its own /etc/corosync, /var/lib/pacemaker, /var/lib/corosync and /var/log/pacemaker
# (directories of the lab bind-mounted over them), the lab's agents in /usr/sbin through an overlay,
# then starts corosync and Pacemaker (the rabbit: our watchers first) detached, and stays, reaping.
# Usage: node.sh LAB NAME
set -euo pipefail
LAB=$1 NAME=$2
NODE=$LAB/node/$NAME
hostname "$NAME"
# The rabbit shares the lab's PID namespace: its pid here is the lab's (lab.sh's in_rabbit).
[ "$NAME" = rabbit-1 ] && echo $$ >"$LAB/nodes/$NAME.pid"
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
for d in /etc/corosync /var/lib/pacemaker /var/lib/corosync /var/log/pacemaker; do
    mkdir -p "$NODE$d" "$d"
    mount --bind "$NODE$d" "$d"
done
mount -t overlay overlay -o "lowerdir=$LAB/sbin:/usr/sbin" /usr/sbin
mkdir -p /var/lib/pacemaker/cib /var/lib/pacemaker/pengine /var/lib/pacemaker/blackbox /var/lib/pacemaker/cores
chown -R hacluster:haclient /var/lib/pacemaker /var/log/pacemaker
chmod 0750 /var/lib/pacemaker/cib
if [ "$NAME" = rabbit-1 ]; then
    # The watchers before Pacemaker: a device started before any watcher fails its start.
    for i in 1 2; do
        GFS2_FENCE_LOG=info setsid "$LAB/bin/gfs2-fence-watcher" run --spool-dir /run/gfs2-fencing \
            --config "$LAB/watcher.json" --id "w$i" --rescan-interval 0.3 --heartbeat-interval 0.3 --ttl 3 \
            --health-interval 0 --log-dir "$LAB/rabbit-logs" --alerts-dir /run/gfs2-fencing-alerts \
            </dev/null >>"$LAB/watcher-$i.log" 2>&1 &
    done
fi
setsid corosync -f </dev/null >"$NODE/corosync.out" 2>&1 &
PCMK_logfile=/var/log/pacemaker/pacemaker.log setsid pacemakerd </dev/null >"$NODE/pacemakerd.out" 2>&1 &
echo "node $NAME up"
# Stay (the PID namespace lives while its first process does), reaping orphans.
trap '' TERM HUP INT
while :; do wait 2>/dev/null; sleep 1; done
