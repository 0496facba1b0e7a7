{{environment}}
# The device every rank must drive (nas/train/device.py): a rank that sees none
# stops at once with an error file (kind "environment") instead of using its CPU.
{{device_exports}}
# One OpenMP/MKL thread pool per rank sized to the rank's cores, unless the
# environment chose already: an unset value makes every rank use all cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-{{threads_per_rank}}}"
# The trainer checkpoints and exits "incomplete" by this time (epoch seconds):
# job start + walltime - signal margin.
deadline=$(($(date +%s) + {{deadline_seconds}}))
