"""Sub-commands of ``splinenas``; one module per group, see :mod:`nas.commands.main`."""
