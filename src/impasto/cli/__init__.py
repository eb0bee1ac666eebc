"""The ``impasto`` command: exit codes 0 done, 1 the run failed (non-finite loss, an output that could not be
written), 2 bad input (before any heavy work), 130 interrupted by Ctrl-C and 143 by SIGTERM (image kept)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..errors import ImpastoError, OutputError
from . import stylize
from .progress import handle_sigterm, stop_code, stop_word


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``impasto`` command; returns the exit code."""
    args = stylize.build_parser().parse_args(argv)
    handle_sigterm()
    try:
        return stylize.run(args)
    except OutputError as err:  # an output of a finished run could not be written
        print(f"impasto: error: {err}", file=sys.stderr)
        return 1
    except ImpastoError as err:
        print(f"impasto: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"impasto: {stop_word()} before the run started; nothing written", file=sys.stderr)
        return stop_code()
