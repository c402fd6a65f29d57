"""Which kind of language model a config describes: causal, masked or encoder-decoder."""

from __future__ import annotations

from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
)

from tasktune import TasktuneError

FAMILIES = ("causal", "masked", "seq2seq")


def detect_family(config) -> str:
    model_type = getattr(config, "model_type", "")
    if getattr(config, "is_encoder_decoder", False) and model_type in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        return "seq2seq"
    for arch in getattr(config, "architectures", None) or []:
        if "MaskedLM" in arch or arch.endswith("ForPreTraining"):
            return "masked"
        if "CausalLM" in arch or "LMHeadModel" in arch:
            return "causal"
    causal = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    masked = model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    if masked and (not causal or not getattr(config, "is_decoder", False)):
        return "masked"
    if causal:
        return "causal"
    raise TasktuneError(
        f"model type '{model_type}' is not a supported language model: tasktune needs a causal LM, "
        "a masked LM or an encoder-decoder LM with a language-modelling head"
    )


def auto_class(family: str):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM

    return {"causal": AutoModelForCausalLM, "masked": AutoModelForMaskedLM,
            "seq2seq": AutoModelForSeq2SeqLM}[family]
