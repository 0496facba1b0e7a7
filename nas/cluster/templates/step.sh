{{launch}} &
step=$!
# The scheduler's early-warning USR2 reaches only this batch shell: pass it on.
trap 'kill -USR2 "$step" 2>/dev/null' USR2
# A trapped signal interrupts `wait` while the step runs on: wait until it is gone,
# then ask once more, which returns the step's own exit status (bash keeps it).
wait "$step"
while kill -0 "$step" 2>/dev/null; do
    wait "$step"
done
wait "$step"
exit $?
