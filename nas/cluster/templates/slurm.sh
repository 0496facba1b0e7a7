#!/bin/bash
{{directives}}
#
# splinenas job {{job_name}} for Slurm. Resubmit by hand: sbatch <this file>
set -uo pipefail
cd {{point_dir}} || exit 1
{{prologue}}
# Every rank's launch wrapper derives the rendezvous (address, port): nas/pointdir/rendezvous.py.
{{step}}
