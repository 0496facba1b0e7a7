# shellcheck shell=bash
# What every splinenas job environment does, whatever the site: sourced by the
# site files (frontier.sh, elcapitan.sh, perlmutter.sh, polaris.sh, aurora.sh,
# slurm.sh, flux.sh, summit.sh). A site copies two files: its site file and
# this one, side by side.
#
# Functions (the site file calls them; nothing runs on sourcing this file but
# the definitions):
#   splinenas_load_site NAME   add $SPLINENAS_MODULE_PATHS to the module path
#                              (module use), load $SPLINENAS_MODULES (both
#                              space-separated), then
#                              activate $SPLINENAS_VENV or $SPLINENAS_CONDA_ENV;
#                              returns non-zero naming what failed
#   splinenas_site NAME        splinenas_load_site, then splinenas_job_defaults
#   splinenas_job_defaults     unbuffered Python, one OpenMP thread per rank,
#                              NCCL/RCCL errors that end the job, NCCL warnings,
#                              srun's --cpus-per-task from sbatch's
#   splinenas_miopen_cache     ROCm: MIOpen's user database and kernel cache in
#                              node-local /tmp, one new folder per job, made
#                              private on the job's first node only
#   splinenas_private_dir NAME    prints a new folder only this user can enter,
#                              under $TMPDIR or /tmp, its name NAME and a random tail
#   splinenas_rccl_slingshot   RCCL over Slingshot 11 with the libfabric plugin,
#                              on the interfaces splinenas_slingshot_nics finds,
#                              with splinenas_rccl_libfabric
#   splinenas_rccl_libfabric   HPE's libfabric settings for RCCL over Slingshot
#   splinenas_nccl_slingshot   NCCL over Slingshot 11 with aws-ofi-nccl
#   splinenas_expect_bus_gbps N   the bus bandwidth below which the trainer's
#                              start-up all-reduce warns
# Safe to source twice: every step is idempotent.

splinenas_load_site() {
    # Lmod, conda and venv activation read unset variables and return non-zero
    # on harmless conditions, so they run without the caller's -e/-u; the
    # caller's options are restored afterwards.
    local name=$1 saved rc=0 mod
    saved=$-
    set +eu
    for mod in ${SPLINENAS_MODULE_PATHS:-}; do
        if ! module use "$mod"; then
            echo "envs/$name: 'module use $mod' failed" >&2
            rc=1
            break
        fi
    done
    for mod in ${SPLINENAS_MODULES:-}; do
        ((rc == 0)) || break
        if ! module load "$mod"; then
            echo "envs/$name: 'module load $mod' failed" >&2
            rc=1
            break
        fi
    done
    if ((rc == 0)) && [[ -n ${SPLINENAS_VENV:-} ]]; then
        if [[ -f $SPLINENAS_VENV/bin/activate ]]; then
            # shellcheck disable=SC1091
            source "$SPLINENAS_VENV/bin/activate"
        else
            echo "envs/$name: SPLINENAS_VENV=$SPLINENAS_VENV has no bin/activate" >&2
            rc=1
        fi
    elif ((rc == 0)) && [[ -n ${SPLINENAS_CONDA_ENV:-} ]] && ! conda activate "$SPLINENAS_CONDA_ENV"; then
        echo "envs/$name: 'conda activate $SPLINENAS_CONDA_ENV' failed" >&2
        rc=1
    fi
    if [[ $saved == *e* ]]; then set -e; fi
    if [[ $saved == *u* ]]; then set -u; fi
    return "$rc"
}

splinenas_site() {
    # The start of every site file: its modules and environment, then the defaults.
    splinenas_load_site "$1" || return 1
    splinenas_job_defaults
}

splinenas_job_defaults() {
    # Progress lines reach the per-segment log as they happen, not at exit.
    export PYTHONUNBUFFERED=1
    # The GPU does the arithmetic; the rank's cores are needed by the data-loader
    # workers that decode JPEGs, so the rank itself keeps one OpenMP thread.
    : "${OMP_NUM_THREADS:=1}"
    export OMP_NUM_THREADS
    # A rank that dies must bring the others down with an error instead of
    # leaving them blocked in an all-reduce until the walltime ends.
    export TORCH_NCCL_ASYNC_ERROR_HANDLING=1
    # NCCL/RCCL names the failing peer and transport in the log when something breaks.
    : "${NCCL_DEBUG:=WARN}"
    export NCCL_DEBUG
    # Since Slurm 22.05 srun no longer inherits --cpus-per-task from sbatch;
    # without this every rank (and all its loader workers) would get one core.
    if [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then
        export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK
    fi
}

splinenas_private_dir() {
    # A predictable name in a node's shared /tmp could be made first, and seeded,
    # by another user: mktemp makes a new folder (mode 0700) with a random tail.
    mktemp -d "${TMPDIR:-/tmp}/${USER:-splinenas}-$1.XXXXXX"
}

splinenas_miopen_cache() {
    # MIOpen keeps its tuning database under ~/.config by default; hundreds of
    # ranks locking one file on a shared file system stall for minutes or fail
    # with disk I/O errors (OLCF, "PyTorch on Frontier"). One new node-local
    # folder per job: a later job never reads a half-written database, and no
    # other user's (the cache holds compiled kernels). The job script sources this
    # on its first node only, so only there is the folder made here, private
    # (mode 0700, random name); every other node gets the same path, which MIOpen
    # creates itself with the default umask, as in OLCF's recipe (mkdir -p in the
    # batch script). Frontier and El Capitan give whole nodes to one job.
    local job=${SLURM_JOB_ID:-${FLUX_JOB_ID:-${PBS_JOBID:-${LSB_JOBID:-local}}}}
    if [[ -z ${MIOPEN_USER_DB_PATH:-} ]]; then
        MIOPEN_USER_DB_PATH=$(splinenas_private_dir "miopen-$job") || {
            echo "splinenas: no private folder for MIOpen's cache; it stays in ~/.config" >&2
            return 0
        }
    fi
    : "${MIOPEN_CUSTOM_CACHE_DIR:=$MIOPEN_USER_DB_PATH}"
    export MIOPEN_USER_DB_PATH MIOPEN_CUSTOM_CACHE_DIR
}

splinenas_rccl_slingshot() {
    # RCCL between nodes over HPE Slingshot 11 through libfabric (the aws-ofi-rccl
    # plugin: its lib/ folder in $SPLINENAS_RCCL_PLUGIN_DIR unless a module put it
    # on LD_LIBRARY_PATH), not TCP sockets, which do not scale (OLCF, "PyTorch on
    # Frontier"); all four NICs.
    if [[ -n ${SPLINENAS_RCCL_PLUGIN_DIR:-} ]]; then
        export LD_LIBRARY_PATH=$SPLINENAS_RCCL_PLUGIN_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        # OLCF: "IMPORTANT! Without this the plugin will not be used!"; some RCCL
        # versions find it on LD_LIBRARY_PATH only as libnccl-net.so (same page).
        : "${NCCL_NET_PLUGIN:=$SPLINENAS_RCCL_PLUGIN_DIR/librccl-net.so}"
        export NCCL_NET_PLUGIN
    fi
    : "${NCCL_SOCKET_IFNAME:=$(splinenas_slingshot_nics)}"
    : "${NCCL_CROSS_NIC:=1}"
    export NCCL_SOCKET_IFNAME NCCL_CROSS_NIC
    splinenas_rccl_libfabric
}

splinenas_rccl_libfabric() {
    # The libfabric settings HPE calls "mandatory for running RCCL applications"
    # (HewlettPackard/shs-ccl-docs rccl/rccl_tuning_guide.md, "Essential Libfabric
    # Environment Settings"; OLCF's "PyTorch on Frontier" lists the same set "for
    # both correctness and best performance at scale"). A module loaded before this
    # (rccl-net-plugin) or the user sets them first and wins. Left out: the table's
    # FI_CXI_RDZV_PROTO=alt_read and FI_CXI_RDZV_GET_MIN=0, which need the driver
    # property rdzv_get_en=0 set for the job (Slurm --network=disable_rdzv_get);
    # set both with that flag in [cluster] extra_directives.
    # Peer-to-peer access through large BAR.
    : "${HSA_FORCE_FINE_GRAIN_PCIE:=1}"
    # kdreg2: OLCF's choice on Frontier; HPE names userfaultfd and kdreg2.
    : "${FI_MR_CACHE_MONITOR:=kdreg2}"
    # "Avoids ROCm allocation calls from the provider that may cause RCCL deadlocks."
    : "${FI_CXI_DISABLE_HOST_REGISTER:=1}"
    : "${FI_CXI_DEFAULT_CQ_SIZE:=131072}"
    # Software matching once the NIC's hardware match resources are exhausted.
    : "${FI_CXI_RX_MATCH_MODE:=hybrid}"
    : "${FI_CXI_RDZV_EAGER_SIZE:=0}"
    : "${FI_CXI_RDZV_THRESHOLD:=0}"
    : "${FI_CXI_DEFAULT_TX_SIZE:=2048}"
    export HSA_FORCE_FINE_GRAIN_PCIE FI_MR_CACHE_MONITOR FI_CXI_DISABLE_HOST_REGISTER
    export FI_CXI_DEFAULT_CQ_SIZE FI_CXI_RX_MATCH_MODE FI_CXI_RDZV_EAGER_SIZE
    export FI_CXI_RDZV_THRESHOLD FI_CXI_DEFAULT_TX_SIZE
}

splinenas_slingshot_nics() {
    # The node's Slingshot interfaces, comma-separated, for NCCL_SOCKET_IFNAME:
    # Frontier names them hsn0-hsn3 (OLCF), LLNL's MI300A machines hsi0-hsi3
    # (hwloc in https://github.com/llnl/mpibind/issues/45). A name that matches no
    # interface stops RCCL's bootstrap ("no socket interface found"), so they are
    # read from the node ($SPLINENAS_NET_DIR, default /sys/class/net); OLCF's
    # list where the node shows neither.
    local dir=${SPLINENAS_NET_DIR:-/sys/class/net} prefix path names=()
    for prefix in hsn hsi; do
        for path in "$dir"/"$prefix"[0-9]*; do
            [[ -e $path ]] && names+=("${path##*/}")
        done
        if ((${#names[@]})); then
            (IFS=,; echo "${names[*]}")
            return 0
        fi
    done
    echo "hsn0,hsn1,hsn2,hsn3"
}

splinenas_nccl_slingshot() {
    # NCCL between nodes over HPE Slingshot 11 through libfabric (aws-ofi-nccl),
    # the settings ALCF measured on Polaris: with NCCL_NET set NCCL stops at start
    # when the plugin is missing instead of falling back to sockets.
    : "${NCCL_NET:=AWS Libfabric}"
    : "${NCCL_NET_GDR_LEVEL:=PHB}"
    : "${NCCL_CROSS_NIC:=1}"
    : "${FI_CXI_DISABLE_HOST_REGISTER:=1}"
    : "${FI_MR_CACHE_MONITOR:=userfaultfd}"
    : "${FI_CXI_DEFAULT_CQ_SIZE:=131072}"
    export NCCL_NET NCCL_NET_GDR_LEVEL NCCL_CROSS_NIC
    export FI_CXI_DISABLE_HOST_REGISTER FI_MR_CACHE_MONITOR FI_CXI_DEFAULT_CQ_SIZE
}

splinenas_expect_bus_gbps() {
    # The trainer's start-up all-reduce warns below this bus bandwidth (GB/s): a
    # collective library on TCP sockets instead of the network plugin. The site
    # files pass a starting value, not measured on the machine: see the README's
    # "Communication check"; a value set before sourcing wins.
    : "${SPLINENAS_EXPECTED_BUS_GBPS:=$1}"
    export SPLINENAS_EXPECTED_BUS_GBPS
}
