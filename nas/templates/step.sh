{{launch}} --deadline "$deadline" &
step=$!
# The scheduler's early-warning USR2 reaches only this batch shell: pass it on.
trap 'kill -USR2 "$step" 2>/dev/null' USR2
wait "$step"
status=$?
while kill -0 "$step" 2>/dev/null; do
    wait "$step"
    status=$?
done
exit "$status"
