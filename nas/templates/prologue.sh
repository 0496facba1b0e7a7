{{environment}}
# The trainer checkpoints and exits "incomplete" by this time (epoch seconds):
# job start + walltime - signal margin.
deadline=$(($(date +%s) + {{deadline_seconds}}))
