"""Convert a GGUF checkpoint once into a safetensors folder under the user cache dir.

transformers dequantises GGUF on every load (about 25 s for SmolLM2-135M) and refuses
`save_pretrained` on a GGUF-loaded model, so we write config, tokenizer and a
safetensors state dict ourselves, atomically (temporary folder + rename).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import platformdirs
import torch
from safetensors.torch import save_file


def cache_root() -> Path:
    env = os.environ.get("TASKTUNE_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("tasktune"))


def _file_key(path: Path) -> str:
    """Content key (size + the first 4 MB), so every environment holding the same file shares one cache."""
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as f:
        h.update(f.read(4 << 20))
    return h.hexdigest()[:12]


def cached_gguf_dir(name: str, gguf_path: Path) -> Path:
    """Return a folder loadable by `from_pretrained`, converting the GGUF file on first use."""
    target = cache_root() / "models" / f"{name}-{_file_key(gguf_path)}"
    if (target / "model.safetensors").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, fname = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        state = {}
        seen: set[int] = set()
        for key, tensor in model.state_dict().items():
            if tensor.data_ptr() in seen:  # tied weights (lm_head = embeddings) are stored once
                continue
            seen.add(tensor.data_ptr())
            state[key] = tensor.contiguous()
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt", "source": fname})
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def cached_dtype_dir(fp32_dir: Path, dtype: torch.dtype) -> Path:
    """A copy of the fp32 cache in `dtype` (bf16 / fp16), so loading it never maps the fp32 file:
    the same values as casting at load time (same rounding), half the bytes read, lower peak RSS."""
    if dtype == torch.float32:
        return fp32_dir
    from safetensors.torch import load_file

    target = fp32_dir.with_name(fp32_dir.name + "-" + str(dtype).split(".")[-1])
    if (target / "model.safetensors").is_file():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for f in fp32_dir.iterdir():
            if f.name != "model.safetensors":
                shutil.copy2(f, tmp / f.name)
        state = {k: v.to(dtype) for k, v in load_file(str(fp32_dir / "model.safetensors")).items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        try:
            os.replace(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
