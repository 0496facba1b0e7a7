{{environment}}
# The device every rank must drive (nas/train/device.py): a rank that sees none
# stops at once with an error file (kind "environment") instead of using its CPU.
{{device_exports}}
# The network the ranks will talk over, first in the log (the trainer adds the
# backend and the measured bus bandwidth): a fallback to TCP sockets shows here.
net_plugin=none
IFS=: read -ra lib_dirs <<<"${LD_LIBRARY_PATH:-}"
for lib_dir in "${lib_dirs[@]}"; do
    for lib in "$lib_dir"/libnccl-net*.so "$lib_dir"/librccl-net*.so; do
        if [[ -e $lib ]]; then net_plugin=$lib && break 2; fi
    done
done
echo "splinenas: network: NCCL_NET=${NCCL_NET:-unset} NCCL_NET_PLUGIN=${NCCL_NET_PLUGIN:-unset}" \
    "plugin library=$net_plugin NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-unset}" \
    "FI_PROVIDER=${FI_PROVIDER:-unset}"
# One OpenMP/MKL thread pool per rank sized to the rank's cores, unless the
# environment chose already: an unset value makes every rank use all cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-{{threads_per_rank}}}"
# The trainer checkpoints and exits "incomplete" by this time (epoch seconds):
# job start + walltime - signal margin.
deadline=$(($(date +%s) + {{deadline_seconds}}))
