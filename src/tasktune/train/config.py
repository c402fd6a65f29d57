"""Training settings shared by every method (each field is a CLI option of `tasktune train`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    max_steps: int = 300
    """Optimizer steps."""
    batch_size: int = 16
    """Examples per step and process (times grad_accum)."""
    lr: float = 0.0
    """Learning rate; 0 picks the method's default (prompt tuning 3e-2)."""
    optimizer: str = "adamw"
    """adamw | adafactor"""
    weight_decay: float = 1e-5
    warmup_ratio: float = 0.1
    """Linear warmup over this share of the steps, then linear decay to 0."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step."""
    micro_batch_tokens: int = -1
    """Split each batch into the fewest equal, length-sorted pieces of at most this many padded
    tokens, one forward each, gradients summed: less padding and bounded activation memory, the
    same update. -1 = auto (768 on CPU, whole batches elsewhere), 0 = whole batches."""
    max_grad_norm: float = 1.0
    """Gradient clipping (0 = off)."""
    eval_every: int = 50
    """Evaluate on dev every N steps (and at the end); the best dev score is kept."""
    eval_batch_size: int = 32
    patience: int = 0
    """Stop after this many evaluations without improvement (0 = never)."""
    save_every: int = 50
    """Write a resumable checkpoint every N steps."""
    log_every: int = 10
    seed: int = 0
    max_length: int = 256
    """Longest sequence in tokens; the longest input field is cut to fit."""
    gradient_checkpointing: bool = False
    """Recompute each backbone layer's activations in the backward pass: far less memory, ~1/3 more
    compute (not with prefix tuning, whose KV prefix the recompute would drop)."""
    dev_size: int = 200
    """When the data has no dev split, hold out this many training examples (seeded)."""
