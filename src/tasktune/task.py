"""A Task: one task module on a backbone, with its template, verbalizer and objective.

Training, evaluation, prediction, the CLI and the server all go through this object; it is
built in one place (tasktune/build.py) from a TaskSpec. The Task runs the forward path and
hands scores to its objective: it never asks which objective or method it holds, only what
they declare (objective.decodes, module.calibrates).
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import torch

from tasktune.data.readers import Example
from tasktune.engine.batch import EVAL_BATCH_SIZE, Batch, length_sorted_batches
from tasktune.engine.decode import generate
from tasktune.engine.kv_prefix import SharedPrefixCache
from tasktune.methods.base import TaskModule
from tasktune.objectives.base import Generated, Objective, Prediction
from tasktune.objectives.calibration import calibrate, content_free_examples, log_prior
from tasktune.spec import TaskSpec
from tasktune.templates import Template, Verbalizer


class Task:
    def __init__(self, backbone, module: TaskModule, template: Template, verbalizer: Verbalizer | None,
                 objective: Objective, max_length: int = 256, reuse_prefix: bool = True):
        self.backbone, self.module, self.template, self.verbalizer = backbone, module, template, verbalizer
        self.objective, self.max_length = objective, max_length
        self.module.to(backbone.device)
        self.log_prior: torch.Tensor | None = None  # contextual calibration, computed on first use
        share = backbone.family == "causal" and reuse_prefix and not module.provides_kv
        self.prefix_cache = SharedPrefixCache() if share else None

    @property
    def method(self) -> str:
        return self.module.name

    @property
    def encoder(self):
        return self.objective.encoder

    @property
    def pad_id(self) -> int:
        return self.backbone.tokenizer.pad_token_id

    def batch(self, examples: list[Example]) -> tuple[Batch, torch.Tensor]:
        batch, labels = self.objective.make_batch(examples, self.pad_id)
        return batch.to(self.backbone.device), labels

    # ---- the forward path -----------------------------------------------------------
    def scores(self, batch: Batch, module=None) -> torch.Tensor:
        """Per-example scores; `module` may be a wrapped (DDP) copy of self.module.

        On a causal LM, the prefix shared by every row (demonstrations, an instruction, a soft
        prompt) runs once per batch, not once per row; at inference its KV is also reused across
        batches. Not under gradient checkpointing, whose causal layers drop a KV-cache prefix."""
        module = module or self.module
        inputs = module(self.backbone, batch)
        training = torch.is_grad_enabled()
        if self.prefix_cache is not None and not (training and self.backbone.model.is_activation_checkpointing):
            with self.module.compute_context(self.backbone.device):  # the prefix KV in the dtype of the rest
                split = self.prefix_cache.split(self.backbone, batch, inputs, fresh=training, module=module)
            if split is not None:
                batch, inputs = split
        return self.scores_from_inputs(inputs, batch)

    def scores_from_inputs(self, inputs: dict, batch: Batch) -> torch.Tensor:
        """Scores of backbone inputs: the method's head, by default the objective's LM-head reading."""
        with self.module.compute_context(self.backbone.device):
            return self.module.head_scores(self.backbone, inputs, batch, self.objective.scores)

    def optimizer_step(self, distributed: bool = False):
        """Context for the forwards and backwards of one optimizer step: the shared prefix runs once
        for all its micro-batches (SharedPrefixCache.step); a no-op where there is none to share."""
        if self.prefix_cache is None or distributed:
            return nullcontext()
        return self.prefix_cache.step()

    @torch.inference_mode()
    def _raw_scores(self, examples: list[Example], batch_size: int) -> torch.Tensor:
        lengths = [self.objective.example_length(ex) for ex in examples]
        out: torch.Tensor | None = None
        self.module.eval()
        for idx in length_sorted_batches(lengths, batch_size):
            batch, _ = self.batch([Example(examples[i].fields, None, examples[i].where) for i in idx])  # labels unused
            scores = self.scores(batch).float().cpu()
            if out is None:
                out = torch.empty(len(examples), scores.shape[-1])
            out[idx] = scores
        return out

    def predict_scores(self, examples: list[Example], batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
        """[N, C] scores, in input order (batches are length-sorted); calibrated where the method says."""
        out = self._raw_scores(examples, batch_size)
        if self.module.calibrates(self.module.config):
            if self.log_prior is None:
                self.log_prior = log_prior(self._raw_scores(content_free_examples(self.template.fields), batch_size))
            out = calibrate(out, self.log_prior)
        return out

    # ---- checking, evaluating, predicting -------------------------------------------
    def validate(self, examples: list[Example], require_label: bool = False) -> None:
        """One-line errors naming file:line for a missing/empty field or an unusable label."""
        from tasktune import TasktuneError

        for ex in examples:
            for name in self.template.fields:
                value = ex.fields.get(name)
                if value is None:
                    raise TasktuneError(f"{ex.where}: missing field '{name}' (row has {sorted(ex.fields)})")
                if not value.strip():
                    raise TasktuneError(f"{ex.where}: field '{name}' is empty")
            self.objective.check(ex, require_label)

    def evaluate(self, examples: list[Example], batch_size: int = EVAL_BATCH_SIZE) -> dict:
        """Metrics whose `score` selects checkpoints: accuracy, P@1, or minus the dev NLL (generation)."""
        examples = self.objective.evaluation_set(examples)
        self.validate(examples)
        t0 = time.perf_counter()
        scores = self.predict_scores(examples, batch_size)
        elapsed = time.perf_counter() - t0
        return {**self.objective.metrics(scores, examples),
                "examples_per_second": len(examples) / max(elapsed, 1e-9), "seconds": elapsed}

    def generate(self, examples: list[Example], beams: int = 5, max_new_tokens: int = 64,
                 length_penalty: float = 1.0, batch_size: int | None = None, min_new_tokens: int = 0) -> list[str]:
        """Decoded texts, `batch_size` sources a batch (default: engine.decode.DECODE_ROWS rows a step)."""
        return generate(self.backbone, self.module, self.encoder, examples, beams, max_new_tokens, length_penalty,
                        batch_size, min_new_tokens)

    def evaluate_generation(self, examples: list[Example], beams: int = 5, max_new_tokens: int = 64) -> dict:
        """Decode once per distinct source (all fields but the target); references grouped per source."""
        from tasktune.objectives.text_metrics import text_metrics

        sources, references = self.objective.sources(examples)
        t0 = time.perf_counter()
        hyps = self.generate(sources, beams, max_new_tokens)
        elapsed = time.perf_counter() - t0
        n_tokens = sum(len(self.backbone.tokenizer(h, add_special_tokens=False).input_ids) for h in hyps)
        return {**text_metrics(hyps, references), "n": len(hyps), "beams": beams,
                "examples_per_second": len(hyps) / elapsed, "tokens_per_second": n_tokens / elapsed,
                "samples": [{"source": s.fields, "output": h} for s, h in list(zip(sources, hyps, strict=True))[:5]]}

    def predict(self, examples: list[Example], batch_size: int = EVAL_BATCH_SIZE, beams: int = 5,
                max_new_tokens: int = 64) -> list[Prediction | Generated]:
        """Scored labels, or decoded texts where the objective decodes."""
        if self.objective.decodes:
            return [Generated(t) for t in self.generate(examples, beams, max_new_tokens)]
        return self.objective.predictions(self.predict_scores(examples, batch_size))

    def spec(self) -> TaskSpec:
        """What an artifact needs to rebuild this task (weights aside)."""
        from dataclasses import asdict

        verb = self.verbalizer
        return TaskSpec(self.method, asdict(self.module.config), self.objective.kind, self.template.source,
                        verb.to_dict() if verb else None, list(verb.labels) if verb else [], self.max_length,
                        self.objective.target_field)
