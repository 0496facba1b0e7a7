#!/usr/bin/env bash
# A real one-node Slurm cluster for the tests: start | stop | status | env.
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge when missing,
# writes a one-node configuration under $SPLINENAS_SLURM_DIR (default
# /tmp/splinenas-slurm), starts munged as the munge user and slurmctld +
# slurmd as root without systemd, and waits for the node to be idle. Needs
# root. Client commands need SLURM_CONF: `eval "$(tests/slurm/cluster.sh env)"`.
#
# The node declares $SPLINENAS_SLURM_CPUS CPUs (default 6) whatever the
# machine has (SlurmdParameters=config_overrides), so jobs of several tasks
# fit on a small host.
set -euo pipefail

DIR=${SPLINENAS_SLURM_DIR:-/tmp/splinenas-slurm}
CPUS=${SPLINENAS_SLURM_CPUS:-6}
CONF=$DIR/slurm.conf
HOST=$(hostname -s)
export SLURM_CONF=$CONF

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

install_packages() {
    local missing=()
    for tool in slurmctld slurmd sbatch munged; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing Slurm and munge (missing: ${missing[*]})"
    local packages=(slurmctld slurmd slurm-client munge)
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${packages[@]}" >"$DIR/apt.log" 2>&1; then
        apt-get update >>"$DIR/apt.log" 2>&1 || true
        apt-get install -y --no-install-recommends "${packages[@]}" >>"$DIR/apt.log" 2>&1 ||
            die "apt-get install failed; see $DIR/apt.log: $(tail -n 5 "$DIR/apt.log")"
    fi
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    munge_ok && return 0
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
    install -d -o munge -g munge -m 0711 /var/lib/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0600 /etc/munge/munge.key
    # munged refuses to run as root ("Logfile is insecure").
    runuser -u munge -- /usr/sbin/munged
    touch "$DIR/munged.ours"
    for _ in $(seq 50); do
        munge_ok && return 0
        sleep 0.1
    done
    die "munged did not answer: $(tail -n 5 /var/log/munge/munged.log 2>/dev/null)"
}

write_config() {
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    cat >"$CONF" <<EOF
ClusterName=splinenas
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
EnforcePartLimits=ALL
ReturnToService=2
MinJobAge=300
KillWait=5
SlurmdParameters=config_overrides
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=1024 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { sinfo -h -n "$HOST" -o %T 2>/dev/null || true; }

wait_idle() {
    local state=""
    for _ in $(seq 150); do
        state=$(node_state)
        [[ $state == idle ]] && return 0
        sleep 0.2
    done
    log "node state after 30 s: '${state}'"
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    die "the node did not become idle"
}

start() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    mkdir -p "$DIR"
    install_packages
    start_munge
    if pid_alive "$DIR/slurmctld.pid" && pid_alive "$DIR/slurmd.pid"; then
        log "already running"
        wait_idle
        return 0
    fi
    write_config
    pid_alive "$DIR/slurmctld.pid" || slurmctld -f "$CONF"
    pid_alive "$DIR/slurmd.pid" || slurmd -f "$CONF"
    wait_idle
    log "up: node $HOST idle with $CPUS CPUs; SLURM_CONF=$CONF"
}

wait_gone() {
    for _ in $(seq 100); do
        pid_alive "$1" || return 0
        sleep 0.1
    done
    return 1
}

stop() {
    if pid_alive "$DIR/slurmctld.pid"; then
        # scontrol shutdown leaves job processes alive: cancel everything first.
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            # shellcheck disable=SC2086 # one id per word
            scancel $jobs || true
            for _ in $(seq 100); do
                [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
                sleep 0.2
            done
        fi
        scontrol shutdown >/dev/null 2>&1 || true
    fi
    for daemon in slurmd slurmctld; do
        if ! wait_gone "$DIR/$daemon.pid"; then
            log "$daemon still alive; sending SIGTERM"
            kill "$(cat "$DIR/$daemon.pid")" 2>/dev/null || true
        fi
    done
    if [[ -e $DIR/munged.ours && -s /run/munge/munged.pid ]]; then
        kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
        rm -f "$DIR/munged.ours"
    fi
    log "stopped"
}

status() {
    local state=""
    # Without a live slurmctld, sinfo would retry for many seconds.
    pid_alive "$DIR/slurmctld.pid" && state=$(node_state)
    printf '%s\n' "${state:-down}"
    [[ $state == idle || $state == allocated || $state == mixed ]]
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
env) printf 'export SLURM_CONF=%q\n' "$CONF" ;;
*)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
