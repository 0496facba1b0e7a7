#!/bin/bash
{{directives}}
#
# splinenas job {{job_name}} for LSF. Resubmit by hand: bsub < <this file>
set -uo pipefail
cd {{point_dir}} || exit 1
{{prologue}}
# Every rank derives the rendezvous (address, port) itself: nas/train/launch.py.
{{step}}
