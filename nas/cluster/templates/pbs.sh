#!/bin/bash
{{directives}}
#
# splinenas job {{job_name}} for PBS Professional / OpenPBS with PALS mpiexec.
# Resubmit by hand: qsub <this file>
set -uo pipefail
cd {{point_dir}} || exit 1
{{prologue}}
# Every rank's launch wrapper derives the rendezvous (address, port): nas/pointdir/rendezvous.py.
# Its address is worked out here, once, on the first node (where PALS puts rank 0),
# and PALS mpiexec hands it to every rank: PBS writes PBS_NODEFILE on the other
# nodes only where gen_nodefile_on_sister_mom is on (OpenPBS src/resmom/catch_child.c).
# The node file's first host, unless the environment file chose (Aurora: its
# Slingshot name, envs/aurora.sh).
if [[ -z ${MASTER_ADDR:-} && -r ${PBS_NODEFILE:-} ]]; then
    MASTER_ADDR=$(awk 'NF { print $1; exit }' "$PBS_NODEFILE") && export MASTER_ADDR
fi
# PBS sends no warning before the walltime: the trainer stops by its deadline.
{{step}}
