"""Exceptions that the CLI turns into one-line messages (exit code 2)."""

from __future__ import annotations


class ImpastoError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""


class InputError(ImpastoError, ValueError):
    """A bad option value, image file or path."""


class WeightsError(ImpastoError):
    """Missing or altered network weights."""


class NonFiniteLossError(ImpastoError):
    """The loss became NaN or infinite during optimization."""
