#!/bin/bash
{{directives}}
#
# splinenas job {{job_name}} for Flux. Resubmit by hand: flux batch <this file>
set -uo pipefail
cd {{point_dir}} || exit 1
{{prologue}}
# Every rank's launch wrapper derives the rendezvous (address, port): nas/pointdir/rendezvous.py.
# Flux (0.51 and later) hands --signal's USR2 to the jobs inside this batch
# instance, the running step's ranks, and not to this script (flux-core
# src/broker/broker.c: signal_cb). Where it does reach this script (an older
# Flux), the shell must not die of it before the step below starts forwarding it
# to `flux run`, which passes it on to the ranks (flux-core doc/man1/flux-job.rst).
trap '' USR2
{{step}}
