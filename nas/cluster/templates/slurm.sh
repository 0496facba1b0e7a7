#!/bin/bash
{{directives}}
#
# splinenas job {{job_name}} for Slurm. Resubmit by hand: sbatch <this file>
set -uo pipefail
cd {{point_dir}} || exit 1
{{prologue}}
# Rendezvous for torch.distributed: the first node of the allocation.
MASTER_ADDR=${MASTER_ADDR:-$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)}
MASTER_PORT=${MASTER_PORT:-$((20000 + ${SLURM_JOB_ID:-0} % 20000))}
export MASTER_ADDR MASTER_PORT
{{step}}
