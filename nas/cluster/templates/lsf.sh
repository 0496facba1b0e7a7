#!/bin/bash
{{directives}}
#
# splinenas job {{job_name}} for LSF. Resubmit by hand: bsub < <this file>
set -uo pipefail
cd {{point_dir}} || exit 1
{{prologue}}
# Every rank's launch wrapper derives the rendezvous (address, port): nas/pointdir/rendezvous.py.
{{step}}
