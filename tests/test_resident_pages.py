import mmap
import struct
import sys

import pytest
import torch

from tasktune.backbone import fused_projections, load_backbone
from tasktune.backbone.resident_pages import PRESENT, release_file_pages

from conftest import save_tiny

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="pagemap and madvise: Linux")
PAGE = mmap.PAGESIZE


def mapped(tmp_path, pages=64) -> torch.Tensor:
    """A float32 tensor viewing a private mapping of a file, as safetensors maps weights."""
    path = tmp_path / "weights.bin"
    path.write_bytes(torch.arange(pages * PAGE // 4, dtype=torch.float32).numpy().tobytes())
    storage = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=pages * PAGE)
    return torch.empty(0, dtype=torch.float32).set_(storage).view(-1)


def resident(t: torch.Tensor) -> int:
    start = t.data_ptr() // PAGE
    n = t.numel() * t.element_size() // PAGE
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(start * 8)
        return sum(bool(e & PRESENT) for e in struct.unpack(f"{n}Q", f.read(n * 8)))


def test_clean_pages_of_a_mapped_file_are_dropped_and_read_back_unchanged(tmp_path):
    t = mapped(tmp_path)
    expected = torch.arange(t.numel(), dtype=torch.float32)
    assert torch.equal(t, expected)  # every page read: resident
    assert resident(t) == 64
    assert release_file_pages([t]) == 64 * PAGE
    assert resident(t) == 0
    assert torch.equal(t, expected)  # faulted back in from the file


def test_only_whole_pages_inside_the_tensor_are_released(tmp_path):
    t = mapped(tmp_path)
    t.sum()
    inner = t[PAGE // 4 + 1: 3 * PAGE // 4 + 1]  # starts inside page 1, ends inside page 3
    assert release_file_pages([inner]) == PAGE  # page 2 only
    assert resident(t) == 63


def test_a_written_page_is_never_released(tmp_path):
    t = mapped(tmp_path)
    t.sum()
    t[5] = -1.0  # this process's private copy of page 0 now: dropping it would lose the write
    assert release_file_pages([t]) == 0
    assert t[5].item() == -1.0 and resident(t) == 64


def test_memory_that_is_no_file_mapping_is_never_touched():
    t = torch.arange(64 * PAGE // 4, dtype=torch.float32)
    assert release_file_pages([t]) == 0
    assert torch.equal(t, torch.arange(64 * PAGE // 4, dtype=torch.float32))


def test_fusion_releases_exactly_the_originals_no_module_reads(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(fused_projections, "release_file_pages", lambda ts: seen.extend(ts) or 0)
    bb = load_backbone(str(save_tiny("llama", tmp_path / "tiny")), "float32", device="cpu")
    attn = [m for m in bb.model.modules() if fused_projections.is_fused(m)]
    assert attn and len(seen) == len(attn)  # q, k and v of every layer
    live = {p.data_ptr() for p in bb.model.parameters()}
    assert not live & {t.data_ptr() for t in seen}
