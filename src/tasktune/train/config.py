"""Training settings shared by every method (each field is a CLI option of `tasktune train`)."""

from __future__ import annotations

from dataclasses import dataclass

from tasktune import TasktuneError
from tasktune.config_ranges import check_ranges, ranged
from tasktune.engine.batch import EVAL_BATCH_SIZE


@dataclass
class TrainConfig:
    max_steps: int = ranged(300, min=1)
    """Optimizer steps."""
    batch_size: int = ranged(16, min=1)
    """Examples per step and process (times grad_accum)."""
    lr: float = ranged(0.0, min=0)
    """Learning rate; 0 picks the method's default (prompt tuning 3e-2)."""
    optimizer: str = "adamw"
    """adamw | adafactor"""
    weight_decay: float = ranged(1e-5, min=0)
    warmup_ratio: float = ranged(0.1, min=0, max=1)
    """Linear warmup over this share of the steps, then linear decay to 0."""
    grad_accum: int = ranged(1, min=1)
    """Micro-batches accumulated per optimizer step."""
    micro_batch_tokens: int = ranged(-1, min=-1)
    """Split each batch into the fewest equal, length-sorted pieces of at most this many padded
    tokens, one forward each, gradients summed: less padding and bounded activation memory, the
    same update. -1 = auto (768 on CPU, whole batches elsewhere), 0 = whole batches."""
    max_grad_norm: float = ranged(1.0, min=0)
    """Gradient clipping (0 = off)."""
    eval_every: int = ranged(50, min=0)
    """Evaluate on dev every N steps (and at the end); the best dev score is kept."""
    eval_batch_size: int = ranged(EVAL_BATCH_SIZE, min=1)
    patience: int = ranged(0, min=0)
    """Stop after this many evaluations without improvement (0 = never)."""
    target_score: float = ranged(0.0, min=0)
    """Stop at the first dev evaluation scoring at least this (0 = never): a run that is good
    enough ends there (the time-to-accuracy protocol of docs/BENCHMARKS.md)."""
    save_every: int = ranged(50, min=1)
    """Write a resumable checkpoint every N steps."""
    log_every: int = ranged(10, min=1)
    seed: int = 0
    max_length: int = ranged(256, min=8)
    """Longest sequence in tokens; the longest input field is cut to fit."""
    gradient_checkpointing: bool = False
    """Recompute each backbone layer's activations in the backward pass: far less memory, ~1/3 more
    compute (not with prefix tuning, whose KV prefix the recompute would drop)."""
    compile: bool = False
    """torch.compile the backbone for this run (inductor, dynamic shapes; the compile cache is kept in
    tasktune's cache folder): a faster step after a one-off compile (minutes the first time on a
    machine, 20-55 s once cached), so worth it for runs of more than about a hundred steps."""
    packed_weights: bool = True
    """Multiply by the frozen backbone's weights packed once into oneDNN's layout (CPU, bf16;
    docs/BENCHMARKS.md, "Packed weights"): a faster step, the same updates, for the linear weights
    held twice while training (the backward's copy). Off, or where that copy would take more than
    half the available memory: the plain weights, held once."""
    dev_size: int = ranged(200, min=0)
    """When the data has no dev split, hold out this many training examples (seeded)."""

    def __post_init__(self):
        check_ranges(self)
        if self.compile and self.gradient_checkpointing:
            raise TasktuneError("--compile with --gradient-checkpointing is not supported: choose one")
