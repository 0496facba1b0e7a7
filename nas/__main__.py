"""``python -m nas`` is the ``splinenas`` command."""

import sys

try:
    from nas.commands.main import main
except KeyboardInterrupt:  # a Ctrl-C as the first module loads: as one later, no traceback
    print("interrupted", file=sys.stderr)
    sys.exit(1)

sys.exit(main())
