"""The candidate trainer: ``python -m nas.train --point-dir DIR [--deadline UNIX_SECONDS]``.

One run trains the network described by ``DIR/point.json`` (see
:mod:`nas.train.point`) with DistributedDataParallel on every rank the launcher
started (torchrun, ``srun`` or ``jsrun``; see :mod:`nas.train.launch`), and
leaves exactly one of these files for the controller:

``result.json``
    the measurement (:mod:`nas.train.result`), written atomically by rank 0.
``progress.json``
    the run stopped early at a safe point with a checkpoint; submit the same
    job again to continue.
``error.json``
    the first failing rank's exception.

The exit code says the same thing without reading a file.
"""

#: Training finished; ``result.json`` is written.
EXIT_COMPLETE = 0
#: An exception; ``error.json`` names the rank and the exception.
EXIT_ERROR = 1
#: The command line or ``point.json`` cannot be used.
EXIT_USAGE = 2
#: Stopped early (deadline, segment length, SIGUSR2 or SIGTERM) after writing
#: ``checkpoint.pt`` and ``progress.json``: resubmit to continue.
EXIT_INCOMPLETE = 3
#: Out of GPU memory: the candidate does not fit; retrying will not help.
EXIT_OUT_OF_MEMORY = 4

POINT_FILE = "point.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
PROGRESS_FILE = "progress.json"
CHECKPOINT_FILE = "checkpoint.pt"
