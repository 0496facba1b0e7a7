"""``python -m nas`` is the ``splinenas`` command."""

import sys

from nas.commands.main import main

sys.exit(main())
