#!/bin/bash
{{directives}}
#
# splinenas job {{job_name}} for LSF. Resubmit by hand: bsub < <this file>
set -uo pipefail
cd {{point_dir}} || exit 1
{{prologue}}
# Rendezvous for torch.distributed: the first compute host. The first line of
# LSB_DJOB_HOSTFILE is the launch (batch) node on CSM machines such as Summit.
MASTER_ADDR=${MASTER_ADDR:-$(sed -n 2p "${LSB_DJOB_HOSTFILE:-/dev/null}")}
MASTER_ADDR=${MASTER_ADDR:-$(hostname)}
MASTER_PORT=${MASTER_PORT:-$((20000 + ${LSB_JOBID:-0} % 20000))}
export MASTER_ADDR MASTER_PORT
{{step}}
