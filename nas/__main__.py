"""``python -m nas`` is the ``splinenas`` command."""

import sys

from nas.cli import main

sys.exit(main())
