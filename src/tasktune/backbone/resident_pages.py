"""Give back the memory of weights the model no longer reads: their pages of the mapped file.

A backbone loaded from safetensors maps the file; each weight is a view of that mapping, and a
page becomes part of the process's resident memory (RSS) once read. When q/k/v are copied into
one fused block (fused_projections.py) the three originals are read once for the copy and never
again, but their pages stay resident: on SmolLM2 33 MB, a second copy of every attention's input
projections, counted in every training and serving process's peak.

`release_file_pages` asks the kernel to drop such pages (madvise MADV_DONTNEED). For a clean page
of a file mapping this only unmaps it: a later read faults it back in from the file, unchanged, so
releasing is never wrong, only sometimes slower. A page that is not clean (written to since it was
mapped, so private to this process) would be lost, so a range is released only when
/proc/self/pagemap says none of its resident pages is private; memory that is not a file mapping
(the heap, anonymous mappings, another device) is never touched. Linux only; elsewhere a no-op.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct

import torch

PAGE = mmap.PAGESIZE
PRESENT, FILE_OR_SHARED = 1 << 63, 1 << 61  # bits of a /proc/self/pagemap entry


def _file_mappings() -> list[tuple[int, int]]:
    """Address ranges of this process's mappings of regular files."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith("/") and not parts[5].rstrip().endswith("(deleted)"):
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                out.append((lo, hi))
    return out


def _clean(pagemap, start: int, end: int) -> bool:
    """No resident page in [start, end) is private to this process (all are the file's own)."""
    n = (end - start) // PAGE
    pagemap.seek(start // PAGE * 8)
    entries = struct.unpack(f"{n}Q", pagemap.read(n * 8))
    return all(not e & PRESENT or e & FILE_OR_SHARED for e in entries)


def release_file_pages(tensors: list[torch.Tensor]) -> int:
    """Drop the resident pages wholly inside each tensor's bytes where they are clean pages of a
    mapped file; returns the bytes of address range released."""
    if not hasattr(mmap, "MADV_DONTNEED") or not os.path.exists("/proc/self/pagemap"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    maps = _file_mappings()
    released = 0
    with open("/proc/self/pagemap", "rb") as pagemap:
        for t in tensors:
            if t.device.type != "cpu" or t.numel() == 0 or not t.is_contiguous():
                continue
            ptr = t.data_ptr()
            start = -(-ptr // PAGE) * PAGE  # whole pages only: a neighbour's bytes stay as they are
            end = (ptr + t.numel() * t.element_size()) // PAGE * PAGE
            if end <= start or not any(lo <= start and end <= hi for lo, hi in maps):
                continue
            if _clean(pagemap, start, end) and libc.madvise(start, end - start, mmap.MADV_DONTNEED) == 0:
                released += end - start
    return released
