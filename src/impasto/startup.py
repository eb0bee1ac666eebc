"""The ``impasto`` command's first seconds, while its modules (torch above all) are imported: a Ctrl-C or a
SIGTERM then ends it at once with one line and exit code 130 or 143, nothing having been written, instead of a
traceback from inside whatever module was being imported (or an error from a half-imported one).

Imported first by the package. The handler is installed only when this process is the command (``impasto ...``
or ``python -m impasto ...``) and the signal still has Python's default handling, so a program that imports
impasto keeps its own; :func:`started` (called by the command once everything is imported) puts the default
handling back, and :func:`finishing` (once it has its exit code) makes a Ctrl-C during Python's own shutdown
end the process quietly.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

_NAMES = ("impasto", "impasto.exe", "impasto-script.py")


def _quit(signum: int, frame: FrameType | None) -> None:
    word, code = ("terminated", 143) if signum == signal.SIGTERM else ("interrupted", 130)
    os.write(2, f"impasto: {word} while starting; nothing written\n".encode())
    os._exit(code)


def is_command(argv: list[str] | None = None, orig_argv: list[str] | None = None) -> bool:
    """Whether this process is the ``impasto`` command: its script is named ``impasto``, or Python was started
    with ``-m impasto`` (``runpy`` imports the package while ``sys.argv[0]`` is still ``-m``)."""
    if argv is None and getattr(sys.modules.get("__main__"), "__name__", "__main__") != "__main__":
        return False  # a child that multiprocessing started (its copy of the command's script runs as __mp_main__)
    argv = sys.argv if argv is None else argv
    orig = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    if not argv:
        return False
    if os.path.basename(argv[0]) in _NAMES:
        return True
    if argv[0] != "-m":
        return False
    for i, arg in enumerate(orig):
        if arg == "-m":
            return orig[i + 1 : i + 2] == ["impasto"]
        if arg == "-mimpasto":
            return True
    return False


#: Whether this process is the command (decided on import: ``python -m impasto`` then changes ``sys.argv``).
_command = False


def _install() -> None:
    global _command
    _command = is_command()
    if not _command:
        return
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _quit)
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _quit)
    except (ValueError, OSError):  # not the main thread: signals are not ours to handle
        pass


def started() -> None:
    """The command has imported what it needs: Ctrl-C raises :class:`KeyboardInterrupt` again and SIGTERM
    has its default action (until the command sets its own)."""
    try:
        if signal.getsignal(signal.SIGINT) is _quit:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if signal.getsignal(signal.SIGTERM) is _quit:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError):
        pass


def finishing(code: int) -> None:
    """The command is done and has said so (``code``: its exit code): a Ctrl-C or SIGTERM while Python shuts
    down (torch's teardown takes a moment) ends the process at once with that code, with no traceback."""
    if not _command:
        return

    def leave(signum: int, frame: FrameType | None) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - leaving anyway
                pass
        os._exit(code)

    try:
        signal.signal(signal.SIGINT, leave)
        signal.signal(signal.SIGTERM, leave)
    except (ValueError, OSError):
        pass


_install()
