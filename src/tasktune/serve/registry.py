"""The tasks a server holds, all on one backbone.

Tasks named on the command line are pinned: always held. With a task root (`--task-root DIR`),
any artifact folder directly inside it can be loaded at run time (POST /tasks/NAME, or on the
first request that names it) and unloaded (DELETE /tasks/NAME); at most `max_tasks` are held, and
loading one more evicts the least recently used task that is neither pinned nor busy (inputs
queued or running). A name is one path component of letters, digits, `.`, `_`, `-` (not starting
with `.`), and its folder must resolve inside the root: `..`, absolute paths and symlinks out of
the root are refused. Every refusal comes before anything is loaded or evicted.
"""

from __future__ import annotations

import re
import threading
from collections import Counter, OrderedDict
from pathlib import Path

from tasktune import TasktuneError
from tasktune.serve.limits import Refused

NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


class TaskRegistry:
    def __init__(self, backbone, root: str | Path | None = None, max_tasks: int = 1000):
        self.backbone = backbone
        self.root = Path(root).resolve() if root is not None else None
        if self.root is not None and not self.root.is_dir():
            raise TasktuneError(f"--task-root {root}: not a folder")
        self.max_tasks = max_tasks
        self.tasks: OrderedDict[str, object] = OrderedDict()  # least recently used first
        self.pinned: set[str] = set()
        self.busy: Counter[str] = Counter()
        self.lock = threading.RLock()
        self.loads = self.evictions = 0

    def __len__(self) -> int:
        return len(self.tasks)

    def items(self):
        with self.lock:
            return list(self.tasks.items())

    def pin(self, name: str, task) -> None:
        """A task named on the command line: held for the server's life."""
        if name in self.tasks:
            raise TasktuneError(f"two artifacts are named '{name}'")
        if len(self.tasks) >= self.max_tasks:
            raise TasktuneError(f"{len(self.tasks) + 1} artifacts named, but --max-tasks is {self.max_tasks}")
        self.tasks[name], self.backbone = task, task.backbone
        self.pinned.add(name)

    def get(self, name: str):
        """The held task `name` (now the most recently used), or None."""
        with self.lock:
            task = self.tasks.get(name)
            if task is not None:
                self.tasks.move_to_end(name)
            return task

    def loadable(self, name: str) -> bool:
        return (self.root is not None and NAME.fullmatch(name) is not None
                and (self.root / name / "tasktune.json").is_file())

    def acquire(self, name: str) -> None:
        with self.lock:
            self.busy[name] += 1

    def release(self, name: str) -> None:
        with self.lock:
            self.busy[name] -= 1
            if self.busy[name] <= 0:
                del self.busy[name]

    # ---- loading and unloading -------------------------------------------------------
    def folder(self, name: str) -> Path:
        """The artifact folder of `name` inside the root, or Refused naming why not."""
        if self.root is None:
            raise Refused(404, f"unknown task '{name}', and the server has no --task-root to load it from")
        if NAME.fullmatch(name) is None:
            raise Refused(400, f"task name {name!r}: one path component of letters, digits, '.', '_', '-'")
        path = (self.root / name).resolve()
        if path.parent != self.root:
            raise Refused(403, f"task '{name}' resolves outside the task root")
        if not (path / "tasktune.json").is_file():
            raise Refused(404, f"no task '{name}' in the task root")
        return path

    def _victim(self) -> str | None:
        return next((n for n in self.tasks if n not in self.pinned and not self.busy.get(n)), None)

    def load(self, name: str):
        """Load `name` from the root (a no-op when held), evicting the least recently used idle task
        when full. Blocking: the server calls it off the event loop."""
        from tasktune.build import load_task

        with self.lock:
            if name in self.tasks:
                return self.get(name)
            path = self.folder(name)
            if len(self.tasks) >= self.max_tasks and self._victim() is None:
                raise Refused(409, f"{len(self.tasks)} tasks held (--max-tasks {self.max_tasks}) and every one is "
                                   "pinned or busy: unload one first")
            try:
                task, _ = load_task(path, backbone=self.backbone)
            except TasktuneError as e:
                raise Refused(422, f"task '{name}': {e}") from None
            if len(self.tasks) >= self.max_tasks:
                self.unload(self._victim())
                self.evictions += 1
            self.tasks[name] = task
            self.loads += 1
            return task

    def unload(self, name: str) -> None:
        with self.lock:
            if name not in self.tasks:
                raise Refused(404, f"task '{name}' is not loaded")
            if name in self.pinned:
                raise Refused(409, f"task '{name}' was named on the command line and stays loaded")
            if self.busy.get(name):
                raise Refused(409, f"task '{name}' has {self.busy[name]} inputs in flight; retry when they finish")
            del self.tasks[name]
