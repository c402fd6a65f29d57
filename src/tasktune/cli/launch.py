"""The `tasktune` entry point: start the process with a caching allocator where the machine has one.

glibc's malloc gives the large activation buffers of a step back to the kernel and faults fresh
pages in for the next (~860 page faults a GEMM call in the later layers, measured on an AMX Xeon).
tcmalloc keeps them: on that machine the training step ran 1.14-1.21x as fast and evaluation 1.08-1.13x
(docs/BENCHMARKS.md, "The allocator"). An allocator has to be in the process before it starts
(LD_PRELOAD), so the launcher re-executes the command once with it, before anything heavy loads.

TASKTUNE_MALLOC chooses: unset or `auto` (tcmalloc where installed, e.g. Debian/Ubuntu
`apt-get install libgoogle-perftools4`; glibc's otherwise), `system` (glibc's malloc, no
re-execution), or the path of a malloc library to preload.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from tasktune import TasktuneError
from tasktune.provenance import allocator

ENV = "TASKTUNE_MALLOC"
MARK = "TASKTUNE_MALLOC_PRELOADED"  # set in the re-executed process: never re-execute twice
CANDIDATES = ("tcmalloc_minimal", "tcmalloc")


def find_tcmalloc() -> str | None:
    """tcmalloc's soname where the dynamic linker can load it (LD_PRELOAD takes sonames)."""
    for name in CANDIDATES:
        if found := ctypes.util.find_library(name):
            return found
    return None


def preload_for(env: Mapping[str, str], platform: str, loaded: str,
                find: Callable[[], str | None] = find_tcmalloc) -> str | None:
    """The library to re-execute with, or None to run as is. `loaded`: the allocator this process has."""
    choice = env.get(ENV, "").strip() or "auto"
    if choice == "system" or platform != "linux" or env.get(MARK) or loaded != "glibc malloc":
        return None
    if choice == "auto":
        return find()
    if not Path(choice).is_file():
        raise TasktuneError(f"{ENV}={choice}: no such file (give 'auto', 'system' or the path of a malloc library, "
                            "e.g. /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4)")
    return choice


def main() -> None:
    try:
        lib = preload_for(os.environ, sys.platform, allocator())
    except TasktuneError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if lib:
        preload = " ".join(x for x in (lib, os.environ.get("LD_PRELOAD", "")) if x)
        try:  # argv as this interpreter was started: the console script, or -m tasktune
            os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]],
                      {**os.environ, "LD_PRELOAD": preload, MARK: lib})
        except OSError:
            pass  # cannot re-execute here: run with the allocator we have
    from tasktune.cli.app import main as run

    run()
