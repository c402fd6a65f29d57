"""One training loop for every method.

Accelerate places the task module (DDP over processes when launched with `accelerate
launch`); the frozen backbone is only moved, never wrapped: it has no gradients to sync.
Each process reads its own share of the bucketed batches. Evaluation on dev every N steps
keeps the best artifact; a checkpoint every N steps makes a killed run resumable.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from accelerate import Accelerator
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors.torch import load_file

from tasktune import TasktuneError
from tasktune.backbone.compiled import compiled
from tasktune.backbone.packing import backward_copies_fit, unpacked
from tasktune.data.readers import Example
from tasktune.engine.batch import micro_batches
from tasktune.regularizers.smart import Smart, SmartConfig
from tasktune.train.checkpoint import load_checkpoint, save_checkpoint
from tasktune.train.config import TrainConfig
from tasktune.train.optim import make_optimizer, warmup_linear
from tasktune.train.run_folder import RunFolder, run_record
from tasktune.train.sampler import batch_stream, encoded_lengths


def _progress(disable: bool) -> Progress:
    return Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[info]}"), disable=disable)


class MetricsLog:
    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled

    def write(self, record: dict) -> None:
        """One line per record, stamped with the wall clock (Unix seconds): a reader can put
        scores against the wait since the command started."""
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps({**record, "time": time.time()}) + "\n")


def train(task, train_set: list[Example], dev_set: list[Example], cfg: TrainConfig, out: str | Path,
          resume: bool = False, quiet: bool = False, extra_meta: dict | None = None,
          stop_after: int | None = None, smart: SmartConfig | None = None) -> dict:
    out = Path(out)
    if task.module.trainable_parameters() == 0:
        return _no_training(task, dev_set, cfg, out, extra_meta)
    accelerator = Accelerator(cpu=task.backbone.device.type == "cpu")
    task.backbone.model.to(accelerator.device)
    torch.manual_seed(cfg.seed)
    objective, module = task.objective, task.module
    encoded = [objective.encode(ex) for ex in train_set]  # tokenise once
    lengths = encoded_lengths(encoded)

    lr = cfg.lr or module.default_lr
    params = module.trainable()
    optimizer = make_optimizer(cfg.optimizer, module.param_groups(lr), lr, cfg.weight_decay)
    scheduler = warmup_linear(optimizer, int(cfg.warmup_ratio * cfg.max_steps), cfg.max_steps)
    wrapped, optimizer = accelerator.prepare(module, optimizer)
    reg = Smart(smart, params) if smart is not None and smart.smart else None
    distributed = accelerator.num_processes > 1
    # tuned backbone weights live outside the (DDP-wrapped) task module: their gradients are averaged here
    outside_ddp = module.tuned.parameters() if module.tuned is not None and distributed else []

    progress = {"step": 0, "best": None, "best_step": None, "bad_evals": 0, "tokens": 0, "seconds": 0.0}
    run = RunFolder(out, accelerator.is_main_process)
    ckpt = run.checkpoint
    record = run_record(task, cfg, len(train_set))
    if resume:
        run.check_resume(record)
    if run.open(resume):
        progress = load_checkpoint(ckpt, accelerator.unwrap_model(wrapped), optimizer.optimizer, scheduler)
    accelerator.wait_for_everyone()
    log = MetricsLog(run.metrics, accelerator.is_main_process)

    stream = batch_stream(lengths, cfg.batch_size, cfg.seed, accelerator.process_index, accelerator.num_processes)
    budget = cfg.micro_batch_tokens if cfg.micro_batch_tokens >= 0 else (768 if accelerator.device.type == "cpu" else 0)
    for _ in range(progress["step"] * cfg.grad_accum):  # resume: same data order, skip what was seen
        next(stream)

    meta = {"train_config": cfg.__dict__, "train_examples": len(train_set), **(extra_meta or {})}
    n_params = module.trainable_parameters()
    meta["p_over_n"] = n_params / max(1, len(train_set))

    def evaluate(step: int) -> None:
        metrics = task.evaluate(dev_set, cfg.eval_batch_size) if dev_set else {}
        score = metrics.get("score", -math.inf) if dev_set else step
        log.write({"step": step, **{f"dev_{k}": v for k, v in metrics.items() if k != "predicted_counts"}})
        if progress["best"] is None or score > progress["best"]:
            progress.update(best=score, best_step=step, bad_evals=0)
            if accelerator.is_main_process:
                run.save_best(task, {**meta, "metrics": {"dev": metrics, "step": step}})
        else:
            progress["bad_evals"] += 1
        wrapped.train()

    losses: list[float] = []
    model = task.backbone.model
    plain = not cfg.packed_weights or any(p.requires_grad for p in model.parameters()) \
        or not backward_copies_fit(model)  # fine-tuning trains the weights: nothing to pack
    with (unpacked(model, plain), checkpointing(task, cfg.gradient_checkpointing), compiled(model, cfg.compile),
          _progress(quiet or not accelerator.is_main_process) as bar):
        job = bar.add_task("train", total=cfg.max_steps, completed=progress["step"], info="")
        wrapped.train()
        while progress["step"] < cfg.max_steps:
            t0 = time.perf_counter()
            step_loss, step_tokens = 0.0, 0
            with task.optimizer_step(distributed=distributed):
                for micro in range(cfg.grad_accum):
                    _, idx = next(stream)
                    pieces = micro_batches(idx, lengths, budget)
                    for k, piece in enumerate(pieces):
                        batch, labels = objective.collate([encoded[i] for i in piece], task.pad_id)
                        batch = batch.to(accelerator.device)
                        step_tokens += batch.real_tokens
                        sync = micro == cfg.grad_accum - 1 and k == len(pieces) - 1
                        ctx = accelerator.no_sync(wrapped) if not sync and distributed else nullcontext()
                        with ctx:
                            if reg:
                                loss = reg.loss(lambda b=batch: wrapped(task.backbone, b),
                                                lambda inputs, b=batch: task.scores_from_inputs(inputs, b),
                                                objective.loss, labels, task.backbone.embed)
                            else:
                                loss = objective.loss(task.scores(batch, wrapped), labels)
                            loss = loss * len(piece) / len(idx) / cfg.grad_accum  # a piece's share of the batch mean
                            accelerator.backward(loss)
                        step_loss += loss.item()
            for p in outside_ddp:
                if p.grad is not None:
                    p.grad = accelerator.reduce(p.grad, reduction="mean")
            if cfg.max_grad_norm:
                accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            if reg:
                reg.after_step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            progress["step"] += 1
            progress["tokens"] += step_tokens
            progress["seconds"] += time.perf_counter() - t0
            losses.append(step_loss)
            step = progress["step"]
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                log.write({"step": step, "loss": sum(losses) / len(losses), "lr": scheduler.get_last_lr()[0],
                           "tokens_per_second": progress["tokens"] / max(progress["seconds"], 1e-9)})
                losses.clear()
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.max_steps:
                evaluate(step)
            if accelerator.is_main_process and (step % cfg.save_every == 0 or step == cfg.max_steps):
                save_checkpoint(ckpt, accelerator.unwrap_model(wrapped), optimizer.optimizer, scheduler, progress,
                                record)
            best = progress["best"]
            info = f"loss {step_loss:.3f}" + (f" dev {best:.3f}" if dev_set and best is not None else "")
            bar.update(job, completed=step, info=info)
            if cfg.patience and progress["bad_evals"] >= cfg.patience:
                break
            if cfg.target_score and dev_set and progress["best"] is not None and progress["best"] >= cfg.target_score:
                break
            if stop_after is not None and step >= stop_after:  # pause (a kill, in tests): checkpoint, no commit
                if accelerator.is_main_process:
                    save_checkpoint(ckpt, accelerator.unwrap_model(wrapped), optimizer.optimizer, scheduler, progress,
                                    record)
                break
    accelerator.wait_for_everyone()
    best = run.best_weights()
    if progress["best_step"] != progress["step"] and best.is_file():
        module.load_tensors(load_file(str(best)))  # leave the best weights in the task
    paused = stop_after is not None and progress["step"] >= stop_after and progress["step"] < cfg.max_steps
    if accelerator.is_main_process and not paused:
        run.commit()
    accelerator.wait_for_everyone()
    return {"best_step": progress["best_step"], "best_dev_score": progress["best"] if dev_set else None,
            "steps": progress["step"], "train_seconds": progress["seconds"],
            "tokens_per_second": progress["tokens"] / max(progress["seconds"], 1e-9),
            "trainable_parameters": n_params, "p_over_n": meta["p_over_n"]}


@contextmanager
def checkpointing(task, enabled: bool):
    """Gradient checkpointing on a frozen backbone kept in eval mode: transformers checkpoints a
    layer only when that layer's own `training` flag is set, so we set just that flag (dropout
    and other children stay in eval mode) and restore everything afterwards."""
    if not enabled:
        yield
        return
    if task.module.provides_kv and task.backbone.family == "causal":
        raise TasktuneError("--gradient-checkpointing drops the KV-cache prefix in transformers' causal layers: "
                            f"not with {task.method} on a causal LM")
    from transformers.modeling_layers import GradientCheckpointingLayer

    model = task.backbone.model
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    if not layers:
        raise TasktuneError(f"{type(model).__name__} has no checkpointable layers")
    saved = [m.training for m in layers]
    for m in layers:
        m.training = True
    try:
        yield
    finally:
        for m, was in zip(layers, saved, strict=True):
            m.training = was
        model.activation_checkpointing_disable()


def _no_training(task, dev_set: list[Example], cfg: TrainConfig, out: Path, extra_meta: dict | None) -> dict:
    """Methods without parameters (in-context learning): evaluate on dev and write the artifact."""
    metrics = task.evaluate(dev_set, cfg.eval_batch_size) if dev_set else {}
    run = RunFolder(out)
    run.open(resume=False)
    run.save_best(task, {"train_config": cfg.__dict__, **(extra_meta or {}), "metrics": {"dev": metrics}})
    MetricsLog(run.metrics, True).write({"step": 0, **{f"dev_{k}": v for k, v in metrics.items()
                                                       if k != "predicted_counts"}})
    run.commit()
    return {"best_step": 0, "best_dev_score": metrics.get("accuracy"), "steps": 0, "train_seconds": 0.0,
            "tokens_per_second": 0.0, "trainable_parameters": 0, "p_over_n": 0.0}
