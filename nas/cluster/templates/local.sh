#!/bin/bash
# splinenas job {{job_name}} for the local backend. Rerun by hand: bash <this file>
set -uo pipefail
cd {{point_dir}} || exit 1
exec {{redirect}}
{{prologue}}
exec {{launch}}
