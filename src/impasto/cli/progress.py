"""What the command line shows while it works: a progress bar over any set of loss terms, ``--save-every``
snapshots, and how an interrupted run is named (Ctrl-C or SIGTERM)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from tqdm import tqdm

from ..core.progress import StepInfo
from ..errors import OutputError
from ..io.images import save_image, tensor_to_pil

_terminated = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _terminated
    _terminated = True
    raise KeyboardInterrupt  # the same path as Ctrl-C: the best image so far is kept


def handle_sigterm() -> None:
    """Make SIGTERM (what ``timeout``, systemd and container runtimes send) stop a run like Ctrl-C."""
    global _terminated
    _terminated = False
    signal.signal(signal.SIGTERM, _on_sigterm)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while the block runs (in the main thread): a stopped run's report is printed
    whole however often the keys are pressed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = (signal.SIGINT, signal.SIGTERM)
    before = {n: signal.signal(n, signal.SIG_IGN) for n in names}
    try:
        yield
    finally:
        for n, handler in before.items():
            signal.signal(n, handler)


def stop_word() -> str:
    """How the run stopped: ``terminated`` (SIGTERM) or ``interrupted`` (Ctrl-C); also the kept image's tag."""
    return "terminated" if _terminated else "interrupted"


def stop_code() -> int:
    """The exit code of a stopped run: 143 after SIGTERM (128 + 15), 130 after Ctrl-C (128 + 2)."""
    return 143 if _terminated else 130


def interactive() -> bool:
    """Whether someone watches stderr (a terminal): status lines are for them; a script reading stderr gets the
    bars, the results and the one-line errors only."""
    return sys.stderr.isatty()


def status(text: str, quiet: bool = False) -> None:
    """One line saying what the command is doing, before work that shows no bar (loading networks, reading a
    video), on a terminal; nothing when ``quiet``."""
    if not quiet and interactive():
        print(f"impasto: {text}", file=sys.stderr, flush=True)


class Progress:
    """tqdm bar with step, each loss term and ETA; also writes ``--save-every`` snapshots.

    A snapshot that cannot be written (a full disk) is reported once and snapshots stop; the run goes on.
    """

    def __init__(
        self, total: int, quiet: bool, save_every: int, snapshot_path: Callable[[int], Path], meta: dict
    ) -> None:
        self.bar = None if quiet else tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)
        self.save_every, self.snapshot_path, self.meta = save_every, snapshot_path, meta

    def __call__(self, info: StepInfo) -> None:
        if self.bar is not None:
            if self.bar.total != info.total:
                self.bar.reset(total=info.total)
            self.bar.update(info.step - self.bar.n)
            self.bar.set_postfix({name: f"{value:.3g}" for name, value in info.parts.items()}, refresh=False)
        if self.save_every and info.step % self.save_every == 0:
            try:
                meta = {**self.meta, "step": info.step}  # --resume continues from it
                save_image(tensor_to_pil(info.image), self.snapshot_path(info.step), meta)
            except OutputError as err:
                self.save_every = 0
                print(f"\nimpasto: warning: {err}; no more intermediate images", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class ScalarBar:
    """A tqdm bar counting ``unit``s out of ``total`` (shown from the start), driven by ``(done, total)`` calls
    (batch mode)."""

    def __init__(self, unit: str, total: int | None = None) -> None:
        self.bar = tqdm(total=total, unit=unit, dynamic_ncols=True, file=sys.stderr)

    def __call__(self, done: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()
