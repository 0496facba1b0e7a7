"""The built-in trainer: ``python -m nas.train [--point-dir DIR] [--deadline UNIX_SECONDS]``.

One command of the trainer contract (:mod:`nas.pointdir.contract`): every
rank runs it behind the launch wrapper :mod:`nas.trial.launch`, which sets the
point folder, the deadline and the env:// rendezvous. One run trains the
network described by ``DIR/point.json`` (see :mod:`nas.pointdir.point`) with
DistributedDataParallel on every rank the launcher started (torchrun,
``srun``, ``jsrun``, ``mpiexec``, ``flux run``), and leaves exactly one of
these files for the controller:

``result.json``
    the measurement (:mod:`nas.pointdir.result`), written atomically by rank 0.
``progress.json``
    the run stopped early at a safe point with a checkpoint; submit the same
    job again to continue.
``error.json``
    the first failing rank's exception, or ``kind = "diverged"`` when the
    divergence guard stopped the run (:mod:`nas.train.curve`).

Along the way rank 0 keeps the learning curve in ``curve.jsonl``
(:mod:`nas.pointdir.curve`).

The exit code says the same thing without reading a file; file names and exit
codes are the contract of :mod:`nas.pointdir.layout`.
"""
