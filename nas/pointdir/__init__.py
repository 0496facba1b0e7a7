"""The controller <-> trainer contract, torch-free: folder layout, file names, exit codes,
``point.json``, ``result.json``/``error.json``/``progress.json`` and the one atomic writer."""
