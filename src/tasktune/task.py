"""A Task: one task module on a backbone, with its template, verbalizer and objective.

Training, evaluation, prediction, the CLI and the server all go through this object.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import nullcontext

import torch

from tasktune import TasktuneError
from tasktune.data.readers import Example
from tasktune.engine.batch import Batch
from tasktune.engine.decode import generate
from tasktune.engine.encoding import TemplateEncoder
from tasktune.engine.kv_prefix import SharedPrefixCache
from tasktune.methods import METHODS, TaskModule
from tasktune.objectives import ClassificationObjective
from tasktune.objectives.calibration import calibrate, content_free_log_prior
from tasktune.objectives.generation import GenerationObjective
from tasktune.objectives.vocabulary import VocabularyObjective
from tasktune.templates import Template, Verbalizer


class Task:
    def __init__(self, backbone, module: TaskModule, template: Template, verbalizer: Verbalizer | None,
                 max_length: int = 256, reuse_prefix: bool = True, objective: str | None = None,
                 target_field: str = "text"):
        """objective: classification (needs a verbalizer), vocabulary (open-vocabulary answer,
        knowledge probing) or generation (`target_field` is the text to produce)."""
        self.backbone, self.module, self.template, self.verbalizer = backbone, module, template, verbalizer
        self.max_length = max_length
        self.encoder = TemplateEncoder.for_backbone(backbone, template, verbalizer, max_length)
        kind = objective or ("classification" if verbalizer is not None else "vocabulary")
        if kind == "classification":
            self.objective = ClassificationObjective(self.encoder)
        elif kind == "vocabulary":
            self.objective = VocabularyObjective(self.encoder)
        elif kind == "generation":
            self.objective = GenerationObjective(self.encoder, target_field)
        else:
            raise TasktuneError(f"unknown objective '{kind}'")
        self.module.to(backbone.device)
        self.log_prior: torch.Tensor | None = None  # contextual calibration, computed on first use
        share = backbone.family == "causal" and reuse_prefix and not module.provides_kv
        self.prefix_cache = SharedPrefixCache() if share else None

    @property
    def method(self) -> str:
        return self.module.name

    @property
    def pad_id(self) -> int:
        return self.backbone.tokenizer.pad_token_id

    def batch(self, examples: list[Example]) -> tuple[Batch, torch.Tensor]:
        batch, labels = self.objective.make_batch(examples, self.pad_id)
        return batch.to(self.backbone.device), labels

    def scores(self, batch: Batch, module=None) -> torch.Tensor:
        """[B, C] label scores; `module` may be a wrapped (DDP) copy of self.module.

        On a causal LM, the prefix shared by every row (demonstrations, an instruction, a soft
        prompt) runs once per batch, not once per row; at inference its KV is also reused across
        batches. Not under gradient checkpointing, whose causal layers drop a KV-cache prefix."""
        inputs = (module or self.module)(self.backbone, batch)
        training = torch.is_grad_enabled()
        if self.prefix_cache is not None and not (training and self.backbone.model.is_activation_checkpointing):
            with self.module.compute_context(self.backbone.device):  # the prefix KV in the dtype of the rest
                split = self.prefix_cache.split(self.backbone, batch, inputs, fresh=training,
                                                rerun=lambda: (module or self.module)(self.backbone, batch))
            if split is not None:
                batch, inputs = split
        return self.scores_from_inputs(inputs, batch)

    def optimizer_step(self, distributed: bool = False):
        """Context for the forwards and backwards of one optimizer step: the shared prefix runs once
        for all its micro-batches (SharedPrefixCache.step); a no-op where there is none to share."""
        if self.prefix_cache is None or distributed:
            return nullcontext()
        return self.prefix_cache.step()

    def scores_from_inputs(self, inputs: dict, batch: Batch) -> torch.Tensor:
        """Scores of backbone inputs: through the method's own head if it has one, else the objective."""
        head = getattr(self.module, "head_scores", None)
        with self.module.compute_context(self.backbone.device):
            if head is not None:
                return head(self.backbone, inputs, batch)
            return self.objective.scores(self.backbone, inputs, batch)

    @torch.inference_mode()
    def predict_scores(self, examples: list[Example], batch_size: int = 32) -> torch.Tensor:
        """[N, C] log-likelihood scores, in input order; batches are length-sorted."""
        lengths = [self.objective.example_length(ex) for ex in examples]
        order = sorted(range(len(examples)), key=lengths.__getitem__)
        out: torch.Tensor | None = None
        self.module.eval()
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch, _ = self.batch([Example(examples[i].fields, None, examples[i].where) for i in idx])  # labels unused
            scores = self.scores(batch).float().cpu()
            if out is None:
                out = torch.empty(len(examples), scores.shape[-1])
            out[idx] = scores
        if getattr(self.module.config, "calibrate", False):
            if self.log_prior is None:
                self.log_prior = content_free_log_prior(self)
            out = calibrate(out, self.log_prior)
        return out

    def validate(self, examples: list[Example], require_label: bool = False) -> None:
        """One-line errors naming file:line for a missing/empty field or an unknown label."""
        for ex in examples:
            for name in self.template.fields:
                value = ex.fields.get(name)
                if value is None:
                    raise TasktuneError(f"{ex.where}: missing field '{name}' (row has {sorted(ex.fields)})")
                if not value.strip():
                    raise TasktuneError(f"{ex.where}: field '{name}' is empty")
            if ex.label is not None:
                self.objective.label_index(ex)
            elif require_label:
                raise TasktuneError(f"{ex.where}: missing label")

    @torch.inference_mode()
    def _mean_nll(self, examples: list[Example], batch_size: int) -> dict:
        total = count = 0.0
        t0 = time.perf_counter()
        self.module.eval()
        for start in range(0, len(examples), batch_size):
            batch, _ = self.batch(examples[start : start + batch_size])
            s = self.scores(batch)
            total, count = total - float(s[:, 0].sum()), count + float(s[:, 1].sum())
        nll = total / max(count, 1)
        elapsed = time.perf_counter() - t0
        return {"loss": nll, "score": -nll, "n": len(examples), "examples_per_second": len(examples) / elapsed,
                "seconds": elapsed}

    def generate(self, examples: list[Example], beams: int = 5, max_new_tokens: int = 64,
                 length_penalty: float = 1.0) -> list[str]:
        return generate(self, examples, beams, max_new_tokens, length_penalty)

    def evaluate_generation(self, examples: list[Example], beams: int = 5, max_new_tokens: int = 64) -> dict:
        """Decode once per distinct source (all fields but the target); references grouped per source."""
        target = self.objective.target_field
        groups: dict[tuple, list[str]] = {}
        first: dict[tuple, Example] = {}
        for ex in examples:
            key = tuple(sorted((k, v) for k, v in ex.fields.items() if k != target))
            groups.setdefault(key, []).append(ex.fields[target])
            first.setdefault(key, ex)
        t0 = time.perf_counter()
        hyps = self.generate(list(first.values()), beams, max_new_tokens)
        elapsed = time.perf_counter() - t0
        from tasktune.objectives.text_metrics import text_metrics

        n_tokens = sum(len(self.backbone.tokenizer(h, add_special_tokens=False).input_ids) for h in hyps)
        return {**text_metrics(hyps, list(groups.values())), "n": len(hyps), "beams": beams,
                "examples_per_second": len(hyps) / elapsed, "tokens_per_second": n_tokens / elapsed,
                "samples": [{"source": first[k].fields, "output": h}
                            for k, h in list(zip(first, hyps, strict=True))[:5]]}

    def evaluate(self, examples: list[Example], batch_size: int = 32) -> dict:
        """Metrics whose `score` selects checkpoints: accuracy, P@1, or minus the dev NLL (generation)."""
        if self.objective.kind == "generation":
            return self._mean_nll(examples, batch_size)
        labeled = [ex for ex in examples if ex.label is not None]
        if not labeled:
            raise TasktuneError("evaluation data has no labels")
        self.validate(labeled)
        t0 = time.perf_counter()
        scores = self.predict_scores(labeled, batch_size)
        elapsed = time.perf_counter() - t0
        gold = torch.tensor([self.objective.label_index(ex) for ex in labeled])
        pred = scores.argmax(-1)
        speed = {"examples_per_second": len(labeled) / max(elapsed, 1e-9), "seconds": elapsed}
        if self.verbalizer is None:  # open vocabulary: P@1 over single-token answers
            keep = gold >= 0
            p1 = (pred[keep] == gold[keep]).float().mean().item() if bool(keep.any()) else 0.0
            return {"p_at_1": p1, "accuracy": p1, "score": p1, "n": int(keep.sum()),
                    "n_multi_token_excluded": int((~keep).sum()), **speed}
        acc = (pred == gold).float().mean().item()
        per_label = {lab: int((pred == i).sum()) for i, lab in enumerate(self.verbalizer.labels)}
        majority = max((gold == i).float().mean().item() for i in range(len(self.verbalizer.labels)))
        return {"accuracy": acc, "score": acc, "n": len(labeled), **speed, "majority_baseline": majority,
                "predicted_counts": per_label}

    def predict(self, examples: list[Example], batch_size: int = 32) -> list[dict]:
        scores = self.predict_scores(examples, batch_size)
        probs = torch.softmax(scores, -1)
        best = probs.argmax(-1)
        if self.verbalizer is None:
            top = probs.topk(5, dim=-1)
            return [{"label": self.objective.label_name(int(i[0])), "score": float(v[0]),
                     "top": {self.objective.label_name(int(j)): float(x) for j, x in zip(i, v, strict=True)}}
                    for v, i in zip(top.values, top.indices, strict=True)]
        return [{"label": self.verbalizer.labels[int(b)], "score": float(p[b]),
                 "scores": {lab: float(x) for lab, x in zip(self.verbalizer.labels, p, strict=True)}}
                for b, p in zip(best, probs, strict=True)]

    def spec(self) -> dict:
        """What an artifact needs to rebuild this task (weights aside)."""
        verb = self.verbalizer
        return {"method": self.method, "method_config": dataclasses.asdict(self.module.config),
                "objective": self.objective.kind, "template": self.template.source,
                "target_field": getattr(self.objective, "target_field", None),
                "verbalizer": verb.to_dict() if verb else None, "labels": list(verb.labels) if verb else [],
                "max_length": self.max_length, "family": self.backbone.family}


def build_task(backbone, method: str, method_config, template: str, labels: list[str] | None,
               verbalizer: str | dict | None = None, max_length: int = 256, seed: int = 0,
               objective: str | None = None, target_field: str = "text") -> Task:
    """`labels` None builds an open-vocabulary task (answers scored over the whole vocabulary)."""
    if method not in METHODS:
        raise TasktuneError(f"unknown method '{method}': choose from {', '.join(METHODS)}")
    cls = METHODS[method]
    tmpl = Template.parse(template)
    if not tmpl.has_answer:
        tmpl = Template.parse(template + "{answer}")
    tmpl = tmpl.with_prefix_soft(cls.prefix_soft_length(method_config)) if cls.uses_soft else tmpl.without_soft()
    verb = Verbalizer.from_spec(verbalizer, labels) if labels is not None else None
    tmpl = cls.task_template(method_config, tmpl, verb)
    encoder_probe = TemplateEncoder.for_backbone(backbone, tmpl, verb, max_length)
    module = cls.build(method_config, backbone, tmpl.n_soft, encoder_probe.label_ids, seed)
    return Task(backbone, module, tmpl, verb, max_length, objective=objective, target_field=target_field)
