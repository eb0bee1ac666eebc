"""Arguments checked against their declared types before any work is done.

One checker serves every entry point: :func:`check_fields` checks the fields of a settings dataclass
(:class:`~impasto.options.Options`, :class:`~impasto.training.TrainOptions`, the video settings) from their type
annotations and the bounds, choices and path flag that :func:`option` records in each field's metadata;
:func:`check_arguments` checks a function's own parameters from its annotations. A wrong value raises one
:class:`~impasto.errors.InputError` naming the argument and what it accepts (``--size must be a whole number from
16 to 16384, got '32'``); right values come back canonical: lists as tuples, a single value where a list is
expected as a one-element tuple, ``os.PathLike`` paths as ``str``, numpy numbers as Python numbers.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import math
import numbers
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

_NONE = type(None)


@dataclass(frozen=True)
class Spec:
    """What a value accepts beyond its type: numeric bounds (applied to each element of a list), choices, and
    whether a ``str`` field is a path (``os.PathLike`` accepted). ``flag`` names it in messages."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[Any, ...] | None = None
    path: bool = False
    flag: str | None = None


def option(default: Any, **spec: Any) -> Any:
    """A dataclass field with a default and a :class:`Spec` (``lo``, ``hi``, ``lo_open``, ``choices``, ``path``,
    ``flag``) in its metadata."""
    return dataclasses.field(default=default, metadata={"check": Spec(**spec)})


class _Wrong(Exception):
    """The value does not fit (the caller words the message)."""


def _bounded(value: float, spec: Spec) -> float:
    if spec.lo is not None and (value <= spec.lo if spec.lo_open else value < spec.lo):
        raise _Wrong
    if spec.hi is not None and value > spec.hi:
        raise _Wrong
    return value


def conform(value: Any, tp: Any, spec: Spec = Spec()) -> Any:  # noqa: B008 - Spec is frozen
    """``value`` made canonical for type ``tp`` within ``spec``; raises :class:`_Wrong` when it does not fit."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin is typing.Union or origin is types.UnionType:
        if value is None and _NONE in args:
            return None
        for member in args:
            if member is not _NONE:
                try:
                    return conform(value, member, spec)
                except _Wrong:
                    continue
        raise _Wrong
    if tp is _NONE:
        if value is None:
            return None
        raise _Wrong
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Wrong
    if tp is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(_bounded(int(value), spec))
        raise _Wrong
    if tp is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
            return float(_bounded(float(value), spec))
        raise _Wrong
    if tp is str:
        if spec.path and isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or (spec.choices is not None and value not in spec.choices):
            raise _Wrong
        return value
    if origin is tuple or origin is collections.abc.Sequence:
        item = args[0] if args else Any
        if isinstance(value, (list, tuple)):
            return tuple(conform(v, item, spec) for v in value)
        if origin is tuple:  # a single value where a list of them is expected
            return (conform(value, item, spec),)
        raise _Wrong
    if origin is collections.abc.Callable or tp is Callable:
        if callable(value):
            return value
        raise _Wrong
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Wrong
    return value  # a type this checker does not know: left to the code that uses it


def _bound(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _number(spec: Spec, whole: bool, plural: bool = False) -> str:
    word = ("whole numbers" if whole else "numbers") if plural else ("a whole number" if whole else "a number")
    if spec.lo is not None and spec.hi is not None and whole:
        return f"{word} from {_bound(spec.lo)} to {_bound(spec.hi)}"
    bounds = []
    if spec.lo is not None:
        bounds.append(f"{'>' if spec.lo_open else '>='} {_bound(spec.lo)}")
    if spec.hi is not None:
        bounds.append(f"<= {_bound(spec.hi)}")
    return " ".join([word, " and ".join(bounds)]) if bounds else word


def describe(tp: Any, spec: Spec = Spec(), plural: bool = False) -> str:  # noqa: B008 - Spec is frozen
    """What type ``tp`` within ``spec`` accepts, in words (``a whole number from 16 to 16384 or None``);
    ``plural``: as the items of a list (``numbers >= 0``)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return "anything"
    if origin is typing.Union or origin is types.UnionType:
        words = list(dict.fromkeys(describe(a, spec, plural) for a in args if a is not _NONE))
        text = ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]
        return text + (" or None" if _NONE in args else "")
    if tp is _NONE:
        return "None"
    if tp is bool:
        return "True or False"
    if tp in (int, float):
        return _number(spec, tp is int, plural)
    if tp is str:
        if spec.choices is not None:
            return ("values from " if plural else "one of ") + ", ".join(map(str, spec.choices))
        if spec.path:
            return "paths (str or os.PathLike)" if plural else "a path (str or os.PathLike)"
        return "strings" if plural else "a str"
    if origin is tuple or origin is collections.abc.Sequence:
        return f"a list of {describe(args[0] if args else Any, spec, plural=True)}"
    if origin is collections.abc.Callable or tp is Callable:
        return "a function (callable)"
    if tp is os.PathLike:
        return "an os.PathLike path"
    if isinstance(tp, type):
        module = tp.__module__.split(".")[0]
        return f"a {module}.{tp.__name__}" if module != "builtins" else f"a {tp.__name__}"
    return str(tp)


def shown(value: Any) -> str:
    """A short view of a value for a message: its repr when short and plain, else its type."""
    if isinstance(value, (str, bytes, int, float, bool, list, tuple, _NONE)):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    module = type(value).__module__.split(".")[0]
    return f"a {module}.{type(value).__name__}" if module != "builtins" else f"a {type(value).__name__}"


def check(name: str, value: Any, tp: Any, spec: Spec = Spec()) -> Any:  # noqa: B008 - Spec is frozen
    """``value`` canonical for ``tp`` within ``spec``, or :class:`InputError` naming ``name``."""
    try:
        return conform(value, tp, spec)
    except _Wrong:
        raise InputError(f"{spec.flag or name} must be {describe(tp, spec)}, got {shown(value)}") from None


@functools.cache
def _hints(owner: Any) -> dict[str, Any]:
    return typing.get_type_hints(owner)


def check_fields(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (some or all fields of dataclass ``cls``) checked against the fields' types and specs, made
    canonical; fields are named ``--field-name`` in messages unless their spec says otherwise."""
    hints, fields = _hints(cls), {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for name, value in values.items():
        spec = fields[name].metadata.get("check", Spec()) if name in fields else Spec()
        if spec.flag is None:
            spec = dataclasses.replace(spec, flag="--" + name.replace("_", "-"))
        out[name] = check(name, value, hints.get(name, Any), spec)
    return out


def check_arguments(
    function: Callable[..., Any], values: Mapping[str, Any], specs: Mapping[str, Spec] | None = None
) -> dict[str, Any]:
    """``values`` of ``function``'s parameters checked against its annotations (and ``specs`` by name), made
    canonical; named as the parameters are in messages."""
    hints, specs = _hints(function), specs or {}
    return {name: check(name, value, hints.get(name, Any), specs.get(name, Spec())) for name, value in values.items()}
