"""The ``impasto`` command: exit codes 0 done, 1 the run failed (non-finite loss, an output that could not be
written), 2 bad input (before any heavy work), 130 interrupted by Ctrl-C and 143 by SIGTERM (image kept).

``impasto CONTENT STYLE... [options]`` stylizes (:mod:`impasto.cli.stylize`); ``impasto COMMAND ...`` runs one of
:data:`COMMANDS` (each a module with ``build_parser()`` and ``run(args) -> int``). A content file that happens to
be named like a command is given as ``./NAME``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from .. import api, startup
from ..errors import ImpastoError, OutputError
from . import export, serve, styles, stylize, train, video
from .progress import handle_sigterm, stop_code, stop_word

#: Subcommands: name -> module with ``build_parser()`` and ``run(args) -> int``.
COMMANDS: dict[str, ModuleType] = {"train": train, "video": video, "styles": styles, "serve": serve,
                                   "export": export}


#: One line on each command, for ``impasto --help``.
SUMMARIES = {
    "train": "learn a painting's style into a network that then stylizes photos in one pass (--model FILE)",
    "video": "stylize a video, frame by frame and temporally consistent",
    "serve": "a web page on this machine: upload a photo and a painting, follow the job, download",
    "styles": "a contact sheet of the 26 built-in styles on a photo (then pick one: --model builtin:N)",
    "export": "export a trained model as ONNX",
}


def commands_text() -> str:
    """The commands, one a line, for ``impasto --help``."""
    lines = [f"  {name:<8} {SUMMARIES.get(name, '')}" for name in COMMANDS]
    return "commands (impasto COMMAND --help shows each one's options):\n" + "\n".join(lines)


def stylize_parser() -> argparse.ArgumentParser:
    """The parser of ``impasto CONTENT STYLE...``, whose usage and help also name the other commands."""
    p = stylize.build_parser()
    names = ", ".join(COMMANDS)
    p.usage = f"impasto CONTENT STYLE [STYLE ...] [-o OUTPUT] [options]\n       impasto COMMAND ... ({names})"
    p.description = f"{p.description}\nOther commands: {names} (see the end of this help)."
    p.epilog = commands_text()
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.missing_hint = f"impasto CONTENT STYLE [-o OUTPUT] stylizes a photo; other commands: {names}"  # type: ignore[attr-defined]
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``impasto`` command; returns the exit code."""
    startup.started()  # everything is imported: Ctrl-C raises KeyboardInterrupt again
    code = 1
    try:
        code = _main(argv)
    except SystemExit as exc:  # argparse: --help, --version, a bad argument
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        raise
    finally:
        startup.finishing(code)  # said and done: a Ctrl-C while Python shuts down ends it quietly
    return code


def _main(argv: Sequence[str] | None) -> int:
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        command = COMMANDS.get(argv[0]) if argv else None
        if not argv:
            print(f"impasto: give a photo and a painting: impasto CONTENT STYLE [-o OUTPUT], or a command: "
                  f"{', '.join(COMMANDS)} (impasto --help shows everything)", file=sys.stderr)  # fmt: skip
            return 2
        parser = command.build_parser() if command else stylize_parser()
        module = command or stylize
        args = parser.parse_args(argv[1:] if command else argv)
        handle_sigterm()
        api.tune_allocator()
        return module.run(args)
    except OutputError as err:  # an output of a finished run could not be written
        print(f"impasto: error: {err}", file=sys.stderr)
        return 1
    except ImpastoError as err:
        print(f"impasto: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"impasto: {stop_word()} before the run started; nothing written", file=sys.stderr)
        return stop_code()
