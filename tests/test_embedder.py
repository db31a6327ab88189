"""The local embedder is all-MiniLM-L6-v2 exactly: its vectors match sentence-transformers' on torch, and it never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from mamabear.memory.embedder import LocalEmbedder

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text(encoding="utf-8"))


def test_vectors_match_sentence_transformers_on_torch() -> None:
    # The reference was made once by sentence-transformers 6.2 on torch (see made_by); a long text checks truncation at 256 tokens.
    vectors = np.array(LocalEmbedder()(REFERENCE["texts"]))
    expected = np.array(REFERENCE["vectors"])
    assert vectors.shape == expected.shape == (len(REFERENCE["texts"]), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * expected).sum(axis=1)
    assert cosines.min() > 0.99999, cosines
    assert np.abs(vectors - expected).max() < 1e-4


def test_batches_of_mixed_lengths_give_each_text_its_own_vector() -> None:
    embed = LocalEmbedder()
    alone = [embed([text])[0] for text in REFERENCE["texts"]]
    together = embed(list(reversed(REFERENCE["texts"])))[::-1]  # padding in a batch must not change a vector
    assert np.allclose(alone, together, atol=1e-5)
    similar = [
        "otters hold hands while they sleep so that they do not drift apart in the water",  # 19 tokens
        "sea otters sleep holding hands in calm water at night",
        "a raft of otters floats together on the bay",
        "otters float on their backs while sleeping",
    ]  # 13, 12 and 10 tokens: one batch, padded to 19
    assert np.allclose([embed([t])[0] for t in similar], embed(similar), atol=1e-5)
    assert embed([]) == []


def test_embedding_imports_neither_torch_nor_sentence_transformers() -> None:
    code = (
        "import sys; from mamabear.memory.embedder import LocalEmbedder; LocalEmbedder()(['hello']); "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
