# Shared by scripts/fixtures.sh and scripts/hpc.sh (sourced): the daemons they start are
# recorded by pid file in $RUN, and only those are ever stopped.

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

# PID from $RUN/NAME.pid when that process is alive and its command line mentions MARKER
# (a recycled pid is not ours).
our_pid() {
    local name=$1 marker=$2 pid
    [[ -s $RUN/$name.pid ]] || return 1
    pid=$(<"$RUN/$name.pid")
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
    echo "$pid"
}

# SIGTERM, up to 10 s for it to go, then SIGKILL.
stop_pid() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
