"""``python -m nas.record.reseal PATH``: decode a state file, write it back sealed on stdout.

The child half of :func:`nas.record.verify.sealed_copy`. A file without a
checksum cannot be known sound before HDF5 parses it, and damaged metadata
can make the library spin, so the parse happens here, in a process the
caller kills after its time limit. What this writes is the same state
encoded by this codec, behind its checksum. ``--unverified`` decodes a
sealed file whose checksum fails (what a repair compares, never what is
loaded). A failure is one JSON line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys

from nas.record import integrity
from nas.record.hdf5 import READ_ERRORS, StateFormatError, StateVersionError, corruption, reencode


def resealed(path: str, *, unverified: bool) -> bytes:
    """The state in ``path`` as a sealed image (its checksum checked unless ``unverified``)."""
    if unverified:
        with open(path, "rb") as handle:
            data = handle.read()
    else:
        data, _ = integrity.read_checked(path)
    return reencode(data, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nas.record.reseal")
    parser.add_argument("path")
    parser.add_argument("--unverified", action="store_true")
    args = parser.parse_args(argv)
    try:
        image = resealed(args.path, unverified=args.unverified)
    except StateVersionError as exc:
        report = {"error": "version", "message": str(exc), "version": exc.version,
                  "package_version": exc.package_version}  # fmt: skip
    except StateFormatError as exc:
        report = {"error": "format", "message": str(exc)}
    except READ_ERRORS as exc:
        report = {"error": "corrupt", "message": corruption(exc)}
    else:
        sys.stdout.buffer.write(image)
        sys.stdout.buffer.flush()
        return 0
    print(json.dumps(report), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
