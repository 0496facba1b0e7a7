#!/bin/bash
{{directives}}
#
# splinenas job {{job_name}} for Flux. Resubmit by hand: flux batch <this file>
set -uo pipefail
cd {{point_dir}} || exit 1
{{prologue}}
# Every rank's launch wrapper derives the rendezvous (address, port): nas/pointdir/rendezvous.py.
# Flux delivers --signal's USR2 to the running step itself; `flux run`, to which
# the step below forwards it too, must ignore it rather than die of it.
trap '' USR2
{{step}}
