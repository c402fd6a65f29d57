"""The server's queue of inputs waiting for the model, and what each input carries."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from tasktune.data.readers import Example


@dataclass
class _Pending:
    names: tuple[str, ...]  # one task, or an ensemble's members
    tasks: tuple = field(repr=False)  # the Task objects, held even if a task is unloaded meanwhile
    example: Example
    future: asyncio.Future = field(repr=False)
    max_new_tokens: int = 64


class WorkQueue:
    """Inputs waiting for the model. `live` counts the ones whose request still waits: an input of a
    request that timed out or whose client left stops counting at once (so abandoned work never
    fills the queue for others) and is discarded, uncomputed, when the worker reaches it."""

    def __init__(self):
        self.items: deque[_Pending] = deque()
        self.live = 0
        self.ready = asyncio.Event()

    def put(self, items: list[_Pending]) -> None:
        if len(self.items) > 4 * max(self.live, 256):  # mostly abandoned: compact now, not when reached
            self.items = deque(p for p in self.items if not p.future.done())
        self.items.extend(items)
        self.live += len(items)
        self.ready.set()

    def abandon(self, p: _Pending) -> None:
        if not p.future.done():
            p.future.cancel()
            self.live -= 1

    def take(self, n: int) -> tuple[list[_Pending], int]:
        """Up to n live inputs from the front, and how many abandoned ones were discarded on the way."""
        out, dropped = [], 0
        while self.items and len(out) < n:
            p = self.items.popleft()
            if p.future.done():
                dropped += 1
            else:
                out.append(p)
                self.live -= 1
        if not self.items:
            self.ready.clear()
        return out, dropped
