"""Command-line helpers shared by the `ptdit` commands, so that their options take one form.

A list option takes its values separated by spaces, `--models A B`; a comma inside a value separates too, so
`--models A,B` is the same list. Options whose values may themselves hold commas (prompts, `--set FIELD=VALUE`) are
plain `nargs="+"` lists and are not split.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any


class _ListAction(argparse.Action):
    def __init__(self, option_strings, dest, item_type=str, length=None, item_choices=None, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.item_type = item_type
        self.length = length
        self.item_choices = item_choices

    def __call__(self, parser, namespace, values, option_string=None):
        items = [item.strip() for value in values for item in value.split(",") if item.strip()]
        if not items:
            parser.error(f"{option_string} needs at least one value")
        if self.length is not None and len(items) != self.length:
            parser.error(f"{option_string} takes {self.length} values, got {len(items)}: {' '.join(items)}")
        try:
            converted = [self.item_type(item) for item in items]
        except ValueError:
            parser.error(f"{option_string}: {' '.join(items)} are not all {self.item_type.__name__} values")
        unknown = [
            item for item in converted if self.item_choices is not None and item not in self.item_choices
        ]
        if unknown:
            parser.error(
                f"{option_string}: invalid choice {unknown[0]!r} (choose from {', '.join(self.item_choices)})"
            )
        setattr(namespace, self.dest, converted)


def add_list_option(
    parser: argparse.ArgumentParser,
    *flags: str,
    type: Callable[[str], Any] = str,
    length: int | None = None,
    choices: Sequence[Any] | None = None,
    **kwargs: Any,
) -> argparse.Action:
    """Add a list option: `--flag A B C` or `--flag A,B,C` (or both mixed) give the list [A, B, C], each item
    converted by `type` and checked against `choices`; `length` demands exactly that many items (e.g. a window
    F H W). Given twice, the last one counts, as for any argparse option."""
    kwargs.setdefault("metavar", "{" + ",".join(map(str, choices)) + "}" if choices else "VALUE")
    return parser.add_argument(
        *flags, nargs="+", action=_ListAction, item_type=type, length=length, item_choices=choices, **kwargs
    )
