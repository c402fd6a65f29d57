"""PEFT as the peer of the speed benchmarks, set up two ways on the embedded SmolLM2-135M.

"tuned" is what a careful user does on a CPU: the backbone in the dtype compared, eager attention
(PyTorch's fused CPU attention has a slow backward; on a GPU sdpa stays, its fused kernels win
there), rows right-padded and the loss read from
the logits at the label position only (a 2D logits_to_keep through PEFT's forward, cross entropy
on the label word's first token, as tasktune does). "defaults" is PEFT's documented causal-LM
usage: prompt text + label word, labels -100 except the label word, the model computes the loss
(LM head over every position), sdpa attention. Evaluation reads the two label words' logits at
each row's last real position (right padding: PEFT's prompt learning ignores position_ids, so a
left-padded row would be scored at shifted positions).

Used by speed_vs_peft.py (step and evaluation speed) and time_to_accuracy.py (the wait to a score).
"""

from __future__ import annotations

import torch

TEMPLATE = "Review: {text}\nSentiment:{answer}"
INIT_TEXT = "Classify the sentiment of the review as positive or negative."
N_VIRTUAL = 20


def smollm_folder() -> str:
    """The embedded model as a transformers folder: the same weights tasktune loads."""
    from tasktune.backbone.aliases import resolve_alias
    from tasktune.backbone.gguf_cache import cached_gguf_dir

    return str(cached_gguf_dir("smollm2-135m", resolve_alias("smollm2-135m")[1]))


def load(method: str, dtype: torch.dtype, tuned: bool = True, device: str = "cpu", lora_r: int = 8):
    """(PEFT model, tokenizer) for method prompt | prefix | ptuning | lora (r, q_proj + v_proj)."""
    from peft import (
        LoraConfig,
        PrefixTuningConfig,
        PromptEncoderConfig,
        PromptTuningConfig,
        PromptTuningInit,
        TaskType,
        get_peft_model,
    )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = smollm_folder()
    tok = AutoTokenizer.from_pretrained(folder)
    tok.pad_token = tok.eos_token
    eager = tuned and torch.device(device).type == "cpu"  # a GPU's fused attention is faster both ways
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype,
                                                 **({"attn_implementation": "eager"} if eager else {}))
    if method == "prompt":
        cfg = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, prompt_tuning_init=PromptTuningInit.TEXT,
                                 num_virtual_tokens=N_VIRTUAL, prompt_tuning_init_text=INIT_TEXT,
                                 tokenizer_name_or_path=folder)
    elif method == "ptuning":
        cfg = PromptEncoderConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=N_VIRTUAL,
                                  encoder_reparameterization_type="MLP", encoder_hidden_size=model.config.hidden_size)
    elif method == "prefix":
        cfg = PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=N_VIRTUAL)
    elif method == "lora":
        cfg = LoraConfig(task_type=TaskType.CAUSAL_LM, r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0,
                         target_modules=["q_proj", "v_proj"])
    else:
        raise ValueError(f"unknown PEFT method {method!r}")
    return get_peft_model(model, cfg).to(device), tok


def shift(method: str) -> int:
    """Positions PEFT puts before the input ids in the logits (prompt tuning and P-tuning)."""
    return N_VIRTUAL if method in ("prompt", "ptuning") else 0


def _rows(tok, exs, with_answer: bool):
    prompts = [tok(TEMPLATE.split("{answer}")[0].format(text=ex.fields["text"])).input_ids for ex in exs]
    answers = [tok(" " + ex.label).input_ids if with_answer else [] for ex in exs]
    seqs = [p + a for p, a in zip(prompts, answers, strict=True)]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [tok.pad_token_id] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    return prompts, answers, ids, mask


def loss(model, tok, exs, method: str, tuned: bool = True) -> torch.Tensor:
    """The training loss of one batch of labelled examples."""
    device = model.device
    prompts, answers, ids, mask = _rows(tok, exs, True)
    if tuned:  # logits at the position before the label word only
        at = torch.tensor([[shift(method) + len(p) - 1] for p in prompts], device=device)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), logits_to_keep=at).logits[:, 0]
        gold = torch.tensor([a[0] for a in answers], device=device)
        return torch.nn.functional.cross_entropy(logits.float(), gold)
    labels = torch.tensor([[-100] * len(p) + a + [-100] * (ids.shape[1] - len(p) - len(a))
                           for p, a in zip(prompts, answers, strict=True)])
    return model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss


@torch.inference_mode()
def accuracy(model, tok, dev, labels: list[str], method: str, batch: int = 32) -> float:
    """Accuracy on `dev`: the label word whose first token scores highest at the last real position."""
    device = model.device
    first = torch.tensor([tok(" " + lab).input_ids[0] for lab in labels], device=device)
    right = 0
    for k in range(0, len(dev), batch):
        exs = dev[k:k + batch]
        prompts, _, ids, mask = _rows(tok, exs, False)
        at = torch.tensor([[shift(method) + len(p) - 1] for p in prompts], device=device)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), logits_to_keep=at).logits[:, 0]
        pred = logits[:, first].argmax(-1).tolist()
        right += sum(labels[p] == ex.label for p, ex in zip(pred, exs, strict=True))
    return right / len(dev)


def generate_ready(model):
    """PEFT 0.21.2's `generate` as its authors meant it on transformers >= 5.24.

    transformers 5.24 renamed the generation cache keyword `past_key_values` to `cache`; PEFT
    0.21.2's prompt-learning `prepare_inputs_for_generation` still reads `past_key_values`, finds
    none, and injects the virtual tokens again at every step (prompt tuning: 20 more embeddings
    before each new token; prefix tuning: the cache replaced by the bare prefix). Its greedy
    outputs then differ from a cache-free decode from the second token on, and prompt tuning runs
    ~14x slower. Renaming the key back in what the base model prepares restores PEFT's logic:
    greedy outputs equal the cache-free decode again (checked on SmolLM2 for prompt and prefix
    tuning). The peer is timed with this shim, i.e. at its intended best. The name it restores warns
    (deprecated) and goes in transformers 5.40: PEFT has to follow before then.

    PEFT 0.22.0 followed: its own `generate` equals the cache-free decode again, and the shim, which
    renames the key back, makes it inject the virtual tokens again. So it applies to PEFT < 0.22 only."""
    import peft
    from packaging.version import Version

    if Version(peft.__version__) >= Version("0.22"):
        return model
    prepare = model.base_model_prepare_inputs_for_generation

    def renamed(*args, **kwargs):
        out = prepare(*args, **kwargs)
        if "cache" in out and "past_key_values" not in out:
            out["past_key_values"] = out.pop("cache")
        return out

    model.base_model_prepare_inputs_for_generation = renamed
    return model
