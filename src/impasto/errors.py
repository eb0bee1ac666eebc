"""Exceptions that the front ends turn into one-line messages, and the two ways a run stops early.

Exit codes of the command line: 2 for :class:`ImpastoError` (bad input, before any heavy work), 1 for a run
that failed (:class:`NonFiniteLossError`, :class:`OutputError`), 130 / 143 for an interrupted run.
"""

from __future__ import annotations

from typing import Any


class ImpastoError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""


class InputError(ImpastoError, ValueError):
    """A bad option value, image file or path."""


class WeightsError(ImpastoError):
    """Missing or altered network weights."""


class OutputError(ImpastoError, OSError):
    """An output could not be written (full disk, folder gone); nothing half-written is left behind."""


class NonFiniteLossError(ImpastoError):
    """The loss became NaN or infinite during optimization; ``image`` is the best image evaluated before."""

    def __init__(self, message: str, image: Any = None) -> None:
        super().__init__(message)
        self.image = image

    def with_image(self, image: Any) -> NonFiniteLossError:
        """The same error carrying another image (the one finished for the caller: upsampled, recoloured)."""
        return type(self)(str(self), image)


class StylizeInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, in the CLI) during a run; ``image`` holds the best image evaluated so far."""

    def __init__(self, image: Any = None) -> None:
        super().__init__("interrupted")
        self.image = image

    def with_image(self, image: Any) -> StylizeInterrupted:
        """The same interruption carrying another image."""
        return type(self)(image)
