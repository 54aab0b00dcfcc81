#!/usr/bin/env bash
# HPC fixtures for tests/tests/hpc.rs and scripts/bench-mpi: a single-node Slurm cluster on
# loopback with job accounting, OpenMPI on the host, and an image with OpenMPI and a small
# allreduce program in the plain registry of scripts/fixtures.sh.
#
#   scripts/hpc.sh [up]   install packages, build the MPI image (cached), start munged, MariaDB,
#                         slurmdbd, slurmctld and slurmd, write hpc.env
#   scripts/hpc.sh down   stop the daemons this script started (by their pid files), nothing else
#   scripts/hpc.sh env    print the path of hpc.env
#
# Needs root and `scripts/fixtures.sh up` (the debian image, the registry on 127.0.0.1:5000).
# Everything lives in $UDOCKER_FIXTURES/slurm (default /var/cache/udocker-rs-fixtures), except
# what the clients insist on finding at fixed places: /etc/slurm/slurm.conf (srun, sbatch, ...),
# /etc/slurm/slurmdbd.conf, munge's socket in /run/munge and MariaDB's in /run/mysqld.
#
# What decides the configuration is in ../shared/spec/hpc.md (checked on our machines): no
# systemd, so the daemons are plain background processes; cgroup v1 "hybrid" hosts, where only
# Slurm's v1 cgroup plugin works (CgroupPlugin=autodetect); a hostname that does not resolve, so
# everything is pinned to 127.0.0.1.
#
# Accounting: `sacct` through slurmdbd and a MariaDB server of our own (own datadir, socket only,
# no TCP). `sstat` (running steps) comes from jobacct_gather/cgroup and needs no database.
set -Eeuo pipefail
umask 022

FIX=${UDOCKER_FIXTURES:-/var/cache/udocker-rs-fixtures}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# have_pkg, our_pid, stop_pid
. "$SCRIPT_DIR/daemons.inc.sh"
S=$FIX/slurm
RUN=$S/run
LOGS=$S/log
ENV_FILE=$FIX/hpc.env
HOST=$(hostname -s)
CLUSTER=udocker
FIX_USER=udtest
MUNGE_SOCKET=/run/munge/munge.socket.2  # the clients' default: no configuration needed
MYSQL_SOCKET=/run/mysqld/mysqld.sock    # the default of Debian's client library (slurmdbd)
PLAIN_ADDR=127.0.0.1:5000
MPI_REPO=test/mpi:latest
# Bump to rebuild the MPI image.
MPI_VERSION=1

say() { printf '[hpc] %s\n' "$*"; }
die() { printf '[hpc] ERROR: %s\n' "$*" >&2; exit 1; }
trap 'die "command failed (line $LINENO, exit $?): $BASH_COMMAND"' ERR

# spawn NAME CMD... -- CMD in the foreground mode of the daemon, in a session of its own (it
# outlives the CI step), its pid in $RUN/NAME.pid. 9>&-: the lock stays ours. From / : a daemon
# keeps the directory it was started in, and slurmstepd (slurmd's child) complains into every
# job's output once that directory (a CI checkout) is removed.
spawn() {
    local name=$1
    shift
    (cd / && exec setsid nohup "$@" >>"$LOGS/$name.out" 2>&1 </dev/null 9>&-) &
    echo $! >"$RUN/$name.pid"
}

wait_for() { # WHAT TRIES CMD... -- retry CMD every 0.2 s
    local what=$1 n=$2 i
    shift 2
    for ((i = 0; i < n; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "$what did not come up (logs in $LOGS)"
}

# write_if_changed FILE MODE -- stdin to FILE; returns 0 when the content changed.
write_if_changed() {
    local file=$1 mode=$2 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$file"
}

# ---------------------------------------------------------------- packages ---

install_packages() {
    # slurm-wlm-mysql-plugin + mariadb-server: only for sacct. libpmix-dev: Slurm's mpi/pmix
    # dlopens the unversioned libpmix.so. libopenmpi-dev: mpicc for the allreduce program.
    local p need=()
    for p in slurmctld slurmd slurm-client slurmdbd slurm-wlm-mysql-plugin munge mariadb-server \
        openmpi-bin libopenmpi-dev libpmix-dev; do
        have_pkg "$p" || need+=("$p")
    done
    if ((${#need[@]} == 0)); then
        say "packages: all present"
        return
    fi
    say "packages: apt-get install ${need[*]} (log: $LOGS/apt.log)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >>"$LOGS/apt.log" 2>&1 || die "apt-get update failed, see $LOGS/apt.log"
    apt-get install -y --no-install-recommends "${need[@]}" >>"$LOGS/apt.log" 2>&1 ||
        die "apt-get install failed, see $LOGS/apt.log"
    # A systemd host would have started the packaged services; we run our own.
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now munge slurmctld slurmd slurmdbd mariadb >>"$LOGS/apt.log" 2>&1 || true
    fi
}

# ---------------------------------------------------------------- MPI image ---

# debian:bookworm (from fixtures.sh's OCI layout) plus OpenMPI from Debian and /app/allreduce,
# compiled here against the host's OpenMPI (the same bookworm packages). Built with umoci
# unpack/repack so that the new layer holds only what apt added.
build_mpi_image() {
    local layout=$FIX/build/oci-mpi src=$FIX/build/oci stamp want b=$FIX/build/mpi-tmp
    want="$MPI_VERSION $(sha256sum "$SCRIPT_DIR/hpc/allreduce.c" | cut -c1-16) $(jq -r \
        '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "debian") | .digest' \
        "$src/index.json")"
    stamp=$layout/.stamp
    if [[ $(cat "$stamp" 2>/dev/null) == "$want" ]]; then
        say "image mpi: cached"
        return
    fi
    say "image mpi: apt-get install openmpi-bin in debian:bookworm (a minute; log: $LOGS/mpi-image.log)"
    rm -rf "$layout" "$b"
    mkdir -p "$b"
    skopeo --insecure-policy copy -q "oci:$src:debian" "oci:$layout:debian" >/dev/null
    umoci unpack --image "$layout:debian" "$b/bundle" >>"$LOGS/mpi-image.log" 2>&1
    local r=$b/bundle/rootfs
    cp /etc/resolv.conf "$r/etc/resolv.conf"
    # The image's /dev is empty (provided at run time); apt needs /dev/null at least.
    mount -t proc proc "$r/proc"
    mount --bind /dev "$r/dev"
    # The chroot's apt needs the mirror the debian image was made from (its sources.list).
    if ! chroot "$r" sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
            --no-install-recommends openmpi-bin libopenmpi3' >>"$LOGS/mpi-image.log" 2>&1; then
        umount -l "$r/proc" "$r/dev"
        die "installing OpenMPI into the image failed, see $LOGS/mpi-image.log"
    fi
    umount -l "$r/proc" "$r/dev"
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb
    : >"$r/etc/resolv.conf"
    mkdir -p "$r/app"
    mpicc -O2 -o "$r/app/allreduce" "$SCRIPT_DIR/hpc/allreduce.c"
    cp "$SCRIPT_DIR/hpc/allreduce.c" "$r/app/"
    umoci repack --image "$layout:mpi" --history.created_by "hpc.sh: openmpi-bin, /app/allreduce" \
        "$b/bundle" >>"$LOGS/mpi-image.log" 2>&1
    umoci config --image "$layout:mpi" --config.cmd /app/allreduce >>"$LOGS/mpi-image.log" 2>&1
    rm -rf "$b"
    echo "$want" >"$stamp"
    say "image mpi: built"
}

push_mpi_image() {
    local layout=$FIX/build/oci-mpi want stamp=$S/push.stamp
    want=$(cat "$layout/.stamp")
    if [[ $(cat "$stamp" 2>/dev/null) == "$want" ]] &&
        curl -sf -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
            "http://$PLAIN_ADDR/v2/${MPI_REPO%:*}/manifests/${MPI_REPO#*:}"; then
        say "push $PLAIN_ADDR/$MPI_REPO: present"
        return
    fi
    skopeo --insecure-policy copy -q --dest-tls-verify=false --format v2s2 "oci:$layout:mpi" \
        "docker://$PLAIN_ADDR/$MPI_REPO" >>"$LOGS/mpi-image.log" 2>&1 ||
        die "pushing the MPI image failed, see $LOGS/mpi-image.log (is scripts/fixtures.sh up?)"
    echo "$want" >"$stamp"
    say "push $PLAIN_ADDR/$MPI_REPO: pushed"
}

# ------------------------------------------------------------------- config ---

write_configs() {
    local mem changed=0 topo
    # The node line as slurmd sees the machine, less its uptime; memory a little below the total
    # so that the node is not refused for having less than configured.
    topo=$(slurmd -C | head -n 1)
    mem=$(($(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$topo") * 9 / 10))
    local node=${topo#NodeName=* }
    node=${node% RealMemory=*}
    mkdir -p /etc/slurm
    write_if_changed /etc/slurm/slurm.conf 644 <<EOF && changed=1 || true
# generated by udocker-rs scripts/hpc.sh -- a single-node test cluster on loopback
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$RUN/slurmctld.pidfile
SlurmdPidFile=$RUN/slurmd.pidfile
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# Every process of a step in the step's cgroup: scancel reaches what double-forks or ignores
# SIGTERM, --mem and -c are enforced, the accounting sums all processes.
ProctrackType=proctrack/cgroup
TaskPlugin=task/affinity,task/cgroup
JobAcctGatherType=jobacct_gather/cgroup
JobAcctGatherFrequency=task=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
# scancel: SIGTERM, then SIGKILL this many seconds later (default 30; tests wait less).
KillWait=5
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Start batch jobs at once (the default delays make sbatch tests slow).
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MpiDefault=none
ReturnToService=2
# Without a default a job takes the node's whole memory and jobs run one at a time.
DefMemPerCPU=512
NodeName=$HOST NodeAddr=127.0.0.1 $node RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    write_if_changed /etc/slurm/cgroup.conf 644 <<EOF && changed=1 || true
# generated by udocker-rs scripts/hpc.sh; autodetect picks v1 on hybrid hosts (v2 refuses them)
CgroupPlugin=autodetect
ConstrainCores=yes
ConstrainRAMSpace=yes
EOF
    # slurmdbd insists on 0600 and its SlurmUser owning the file.
    write_if_changed /etc/slurm/slurmdbd.conf 600 <<EOF && changed=1 || true
# generated by udocker-rs scripts/hpc.sh
AuthType=auth/munge
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=$RUN/slurmdbd.pidfile
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
    if ((changed)); then
        say "config: written to /etc/slurm"
        touch "$RUN/config-changed"
    fi
    # Run-time directory for munged in /run (tmpfs: gone after a reboot).
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    install -d -o munge -g munge -m 0700 "$S/munge"
}

# ------------------------------------------------------------------ daemons ---

start_munge() {
    if our_pid munged "$S/munge" >/dev/null; then
        say "munged: running"
        return
    fi
    # munged forks itself; its pid file (in a directory munge owns) is what we stop.
    runuser -u munge -- munged --origin=127.0.0.1 --socket="$MUNGE_SOCKET" \
        --pid-file="$S/munge/munged.pid" --log-file="$S/munge/munged.log" \
        --seed-file="$S/munge/munged.seed" >>"$LOGS/munged.out" 2>&1 </dev/null 9>&-
    wait_for munged 50 test -s "$S/munge/munged.pid"
    cp "$S/munge/munged.pid" "$RUN/munged.pid"
    wait_for "munge credentials" 50 sh -c 'munge -n | unmunge'
    say "munged: started (pid $(<"$RUN/munged.pid"))"
}

start_mariadb() {
    local db=$S/mysql
    if our_pid mariadb "$db" >/dev/null; then
        say "mariadb: running"
        return
    fi
    if [[ -S $MYSQL_SOCKET ]] && mariadb-admin --socket="$MYSQL_SOCKET" ping >/dev/null 2>&1; then
        die "a MariaDB server that hpc.sh did not start serves $MYSQL_SOCKET; stop it first"
    fi
    if [[ ! -d $db/mysql ]]; then
        rm -rf "$db"
        install -d -o mysql -g mysql "$db"
        mariadb-install-db --no-defaults --user=mysql --datadir="$db" --skip-test-db \
            --auth-root-authentication-method=socket >>"$LOGS/mariadb-install.log" 2>&1 ||
            die "mariadb-install-db failed, see $LOGS/mariadb-install.log"
    fi
    # Socket only: root logs in by its uid (unix_socket), nothing listens on TCP.
    spawn mariadb mariadbd --no-defaults --user=mysql --datadir="$db" --socket="$MYSQL_SOCKET" \
        --skip-networking --pid-file=/run/mysqld/hpc-fixture.pid
    wait_for mariadb 150 mariadb-admin --socket="$MYSQL_SOCKET" ping
    say "mariadb: started (pid $(<"$RUN/mariadb.pid"))"
}

# start_slurm NAME PING-CMD... -- a Slurm daemon in the foreground (-D); restarted when the
# configuration changed.
start_slurm() {
    local name=$1 pid
    shift
    if pid=$(our_pid "$name" "$name -D"); then
        if [[ -e $RUN/config-changed ]]; then
            say "$name: configuration changed, restarting"
            stop_pid "$pid"
        elif [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == *" (deleted)" ]]; then
            say "$name: started from a directory since removed, restarting"
            stop_pid "$pid"
        else
            say "$name: running"
            return
        fi
    fi
    case $name in
    slurmd) clean_cgroups ;;
    esac
    spawn "$name" "$name" -D
    wait_for "$name" 150 "$@"
    say "$name: started (pid $(<"$RUN/$name.pid"))"
}

# Empty job cgroups left by killed runs make slurmd fail the next job with the same id (and drain
# the node): remove them, deepest first. Non-empty ones hold live processes and stay.
clean_cgroups() {
    local d
    for d in /sys/fs/cgroup/*/slurm /sys/fs/cgroup/*/slurm_"$HOST"; do
        [[ -d $d ]] || continue
        find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

node_ready() { [[ $(sinfo -h -n "$HOST" -o %T 2>/dev/null) =~ ^(idle|mixed|allocated) ]]; }

start_daemons() {
    mkdir -p "$S/state" "$S/spool"
    start_munge
    start_mariadb
    start_slurm slurmdbd sacctmgr -n list cluster
    # The cluster must exist in the database before slurmctld registers with it.
    if [[ -z $(sacctmgr -n -P list cluster format=cluster "$CLUSTER") ]]; then
        sacctmgr -i add cluster "$CLUSTER" >>"$LOGS/sacctmgr.log" 2>&1
    fi
    start_slurm slurmctld scontrol ping
    start_slurm slurmd node_ready_or_resume
    rm -f "$RUN/config-changed"
}

# A node drained by a failed job of an earlier run is put back.
node_ready_or_resume() {
    node_ready && return 0
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    node_ready
}

# A smoke job as the test user: the cluster works end to end and accounts the job.
smoke() {
    local out
    out=$(cd / && runuser -u "$FIX_USER" -- srun -N1 -n1 -t 1 --quiet id -u 2>&1) ||
        die "smoke job failed: $out (logs in $LOGS)"
    [[ $out == "$(id -u "$FIX_USER")" ]] || die "smoke job printed '$out'"
    say "smoke job: srun ran as $FIX_USER"
}

write_env() {
    write_if_changed "$ENV_FILE" 644 <<EOF && say "hpc.env: written ($ENV_FILE)" || say "hpc.env: unchanged"
# generated by scripts/hpc.sh -- do not edit
SLURM_NODE=$HOST
SLURM_CLUSTER=$CLUSTER
SLURM_CONF_FILE=/etc/slurm/slurm.conf
SLURM_LOGS=$LOGS
SLURM_ACCOUNTING=sacct
KILL_WAIT=5
MPI_REF=$PLAIN_ADDR/$MPI_REPO
EOF
}

cmd_up() {
    [[ $EUID -eq 0 ]] || die "must run as root"
    [[ -f $FIX/fixtures.env ]] || die "run scripts/fixtures.sh up first"
    mkdir -p "$RUN" "$LOGS"
    exec 9>"$RUN/up.lock"
    flock 9
    install_packages
    id -u "$FIX_USER" >/dev/null 2>&1 || die "user $FIX_USER missing: run scripts/fixtures.sh up"
    build_mpi_image
    push_mpi_image
    write_configs
    start_daemons
    smoke
    write_env
    say "up: done in ${SECONDS}s"
}

cmd_down() {
    [[ $EUID -eq 0 ]] || die "must run as root"
    local name marker pid
    # Reverse start order: slurmd before slurmctld, the database last but munge.
    for name in slurmd slurmctld slurmdbd mariadb munged; do
        case $name in
        munged) marker=$S/munge ;;
        mariadb) marker=$S/mysql ;;
        *) marker="$name -D" ;;
        esac
        if pid=$(our_pid "$name" "$marker"); then
            stop_pid "$pid"
            say "$name: stopped (pid $pid)"
        else
            say "$name: not running"
        fi
        rm -f "$RUN/$name.pid"
    done
}

case ${1:-up} in
up) cmd_up ;;
down) cmd_down ;;
env)
    [[ -f $ENV_FILE ]] || die "$ENV_FILE does not exist yet; run: $0 up"
    echo "$ENV_FILE"
    ;;
-h | --help | help) sed -n '2,/^set -E/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
*) die "unknown command '$1' (expected: up, down, env)" ;;
esac
