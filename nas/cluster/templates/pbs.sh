#!/bin/bash
{{directives}}
#
# splinenas job {{job_name}} for PBS Professional / OpenPBS with PALS mpiexec.
# Resubmit by hand: qsub <this file>
set -uo pipefail
cd {{point_dir}} || exit 1
{{prologue}}
# Every rank's launch wrapper derives the rendezvous (address, port): nas/pointdir/rendezvous.py.
# PBS sends no warning before the walltime: the trainer stops by its deadline.
{{step}}
