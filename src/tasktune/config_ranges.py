"""Ranges of numeric settings, declared on the config dataclass field they belong to.

`ranged(default, min=..., max=...)` is a dataclass field whose range the CLI turns into typer's
own `min`/`max` (an out-of-range flag is refused with the flag named) and that `check_ranges`,
called from each config's __post_init__, enforces for library users too.
"""

from __future__ import annotations

import dataclasses

from tasktune import TasktuneError


def ranged(default, min: float | None = None, max: float | None = None):  # noqa: A002 - typer's own names
    return dataclasses.field(default=default, metadata={"min": min, "max": max})


def check_ranges(config) -> None:
    for f in dataclasses.fields(config):
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        value = getattr(config, f.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
            raise TasktuneError(f"--{f.name.replace('_', '-')} {value}: must be {bounds}")
