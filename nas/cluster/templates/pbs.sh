#!/bin/bash
{{directives}}
#
# splinenas job {{job_name}} for PBS Professional / OpenPBS with PALS mpiexec.
# Resubmit by hand: qsub <this file>
set -uo pipefail
cd {{point_dir}} || exit 1
{{prologue}}
# Every rank derives the rendezvous (address, port) itself: nas/train/launch.py.
# PBS sends no warning before the walltime: the trainer stops by its deadline.
{{step}}
