"""Which of a backbone's weights run packed (packed_weights.py), and running a block without.

Packed: every frozen bf16 linear on CPU, the fused q/k/v blocks included; not an LM head tied to
the input embeddings (the embedding lookup reads the plain table, and the head runs on a few
positions only). torch.compile and a training run that cannot afford the backward copies take
the plain weights for their block (`unpacked`), and get the packed ones back afterwards.
"""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn

from tasktune.backbone.fused_projections import fused_groups, pack_groups, unpack_groups
from tasktune.backbone.packed_weights import is_packed, pack_linears, unpack_linears


def pack_model(model: nn.Module) -> int:
    """Pack the model's frozen bf16 CPU linears; returns how many weights."""
    return pack_groups(model) + pack_linears(model, skip=frozenset({id(model.get_input_embeddings().weight)}))


def unpack_model(model: nn.Module) -> int:
    """Every packed weight's plain matmul back, the packed copies freed; returns how many."""
    return unpack_groups(model) + unpack_linears(model)


def packed_bytes(model: nn.Module) -> int:
    """Bytes of the weights that run packed: what their backward copies add when training."""
    weights = [m.weight for m in model.modules() if is_packed(m)]
    weights += [g.weight for g in fused_groups(model) if g.packed is not None]
    return sum(w.numel() * w.element_size() for w in weights)


def available_memory() -> int | None:
    """MemAvailable in bytes (Linux), None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def backward_copies_fit(model: nn.Module) -> bool:
    """Whether training can afford the packed weights' backward copies: under half the memory
    available now (a 7B backbone's 13 GB of linear weights would not be, on a 24 GB machine)."""
    free = available_memory()
    return free is None or 2 * packed_bytes(model) < free


@contextmanager
def unpacked(model: nn.Module, enabled: bool = True):
    """Run the block on plain weights; packed again afterwards if they were packed before."""
    count = unpack_model(model) if enabled else 0
    try:
        yield
    finally:
        if count:
            pack_model(model)
