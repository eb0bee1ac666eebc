"""Atomic file writes: every output of impasto is written whole or not at all.

The bytes go to a temporary file in the destination folder, are flushed and synced (so a full disk shows up
here as an error, not later as a truncated file), checked for length, and only then renamed over the
destination. On any failure the temporary file is removed and :class:`~impasto.errors.OutputError` names
the file and the reason in one line, with the cause's ``errno`` (a full disk is ``errno.ENOSPC``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import InputError, OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path. Raises :class:`OutputError` on failure."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            written = fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if written != len(data) or os.path.getsize(tmp) != len(data):
            raise OSError(f"short write ({written} of {len(data)} bytes)")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _output_error(path, exc) from None
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`write_bytes`)."""
    return write_bytes(path, text.encode("utf-8"))


def sibling(path: Path, tag: str, suffix: str | None = None) -> Path:
    """A file beside ``path`` named after it: ``out.png`` -> ``out.TAG.png`` (or ``out.TAG.SUFFIX``)."""
    return path.with_name(f"{path.stem}.{tag}{path.suffix if suffix is None else suffix}")


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (the same path, or links to one file): an output must not be an input."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return False


def check_output(output: Path, *inputs: tuple[Path, str]) -> None:
    """One-line :class:`InputError` unless ``output``'s folder exists and can be written and ``output`` is none of
    the existing ``inputs``, each given as (path, what it is: "photo", "model file")."""
    if not output.parent.is_dir():
        raise InputError(f"output folder does not exist: {output.parent}")
    for path, what in inputs:
        if output.exists() and same_file(output, path):
            raise InputError(f"output {output} is the {what}; refusing to overwrite an input")
    check_writable(output.parent)


def check_writable(folder: str | os.PathLike) -> None:
    """Raise :class:`InputError` unless a file can be created in ``folder`` (tried, then removed): catches
    read-only folders and file systems, also for root, before any heavy work."""
    folder = Path(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".impasto-check.", dir=folder)
    except OSError as exc:
        raise InputError(f"cannot write to output folder {folder}: {_reason(exc)}") from None
    os.close(fd)
    os.unlink(tmp)


def _output_error(path: Path, exc: OSError) -> OutputError:
    err = OutputError(f"cannot write {path}: {_reason(exc)}")
    err.errno = exc.errno  # the message stays one line; callers can still tell a full disk from other failures
    return err


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
