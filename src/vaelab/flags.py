"""Command-line options generated from configuration dataclasses.

Every setting is a dataclass field made with ``config.setting`` (its type, default and one-line
help), so the options of ``vaelab train`` (and ``--help``) are read from the fields of the
data, training and model configurations instead of being written by hand.  An absent option
stays absent (``argparse.SUPPRESS``), so that presets and settings files can fill it.

Types: ``int``, ``float``, ``str``; ``X | None`` as ``X``; a sequence of ``int`` (or ``str``)
as one or more values; ``bool`` as a switch (``--name`` for a default of False, the field's
``flag`` such as ``--no-verify`` for a default of True).
"""

from __future__ import annotations

import argparse
import collections.abc
import types
import typing
from dataclasses import MISSING, Field, fields
from typing import Any

from .config import INT_MAX, range_text
from .registry import names

_SEQUENCES = (list, tuple, collections.abc.Sequence)


def add_settings(group, cls: type, skip: collections.abc.Container[str] = ()) -> None:
    """One option per field of the dataclass ``cls`` (those the command line takes), in
    ``group`` (a parser or an argument group)."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        flag, kwargs = option(f, hints[f.name])
        group.add_argument(flag, dest=f.name, default=argparse.SUPPRESS, **kwargs)


def option(f: Field, hint: Any) -> tuple[str, dict[str, Any]]:
    """The option string and ``add_argument`` keywords of field ``f`` with type ``hint``."""
    meta = f.metadata
    flag = meta.get("flag") or "--" + f.name.replace("_", "-")
    default = _default(f)
    text = meta.get("help", "").replace("%", "%%")
    hint = _without_none(hint)
    if hint is bool:
        action = "store_false" if default is True else "store_true"
        return flag, {"action": action, "help": text}
    kwargs: dict[str, Any] = {}
    if typing.get_origin(hint) in _SEQUENCES:
        args = typing.get_args(hint)
        kwargs |= {"nargs": "+", "type": args[0] if args else str}
    elif hint in (int, float):
        kwargs["type"] = hint
    choices = meta.get("choices")
    if choices is not None:
        kwargs["choices"] = names(choices) if isinstance(choices, str) else list(choices)
    if meta.get("metavar"):
        kwargs["metavar"] = meta["metavar"]
        if choices is not None:  # the metavar stands for the names: list them once, here
            text = f"{text}; one of {', '.join(kwargs['choices'])}"
    facts = [f"default: {_shown(default)}"] * (default is not None) + [range_text(meta)]
    facts = [f for f in facts if f]
    if facts:
        text = f"{text} ({'; '.join(facts)})" if text else "; ".join(facts)
    return flag, kwargs | {"help": text}


def _shown(default: Any) -> str:
    return " ".join(map(str, default)) if isinstance(default, list | tuple) else str(default)


def integer(low: int, high: int = INT_MAX):
    """An argparse ``type``: an integer in ``low`` .. ``high``, else argparse's one-line
    error naming the range (an option that is no setting: ``sample --seed``, ``-n``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be >= {low:,} and <= {high:,}")
        return value

    parse.__name__ = "integer"
    return parse


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def _without_none(hint: Any) -> Any:
    """``X`` for ``X | None`` (and ``Optional[X]``); other hints unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


def own_fields(cls: type) -> set[str]:
    """The fields of the config class ``cls`` that its root config (the first dataclass of
    its bases, the settings every model shares) does not declare."""
    roots = [c for c in cls.__mro__ if "__dataclass_fields__" in vars(c)]
    shared = {f.name for f in fields(roots[-1])} if roots else set()
    return {f.name for f in fields(cls)} - shared
