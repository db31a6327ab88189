"""Shared memory: search latency at 10k and 100k records (without and with embedding the query), embedding throughput.

Records get random unit vectors (384 dimensions, as all-MiniLM-L6-v2 makes), so filling
100k takes no embedding time; queries are embedded by the real local model where stated.
Goal: p95 under 50 ms at 100k, excluding embedding.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time

SIZES = (10_000, 100_000)
QUERIES = 200
DIM = 384
GOAL_MS = 50.0


def unit(rng: random.Random) -> list[float]:
    v = [rng.gauss(0, 1) for _ in range(DIM)]
    norm = sum(x * x for x in v) ** 0.5
    return [x / norm for x in v]


def pct(samples: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in samples)
    return statistics.median(ms), ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from crewai.memory.types import MemoryRecord

    from mamabear.memory.chroma_store import ChromaStorage
    from mamabear.memory.embedder import LocalEmbedder

    embedder = LocalEmbedder()
    sentences = [f"note {i}: the team decided to use queue {i % 17} for job type {i % 23}" for i in range(512)]
    embedder(sentences[:8])  # load the model outside the timing
    start = time.perf_counter()
    embedder(sentences)
    per_s = len(sentences) / (time.perf_counter() - start)
    single = []
    for text in sentences[:50]:
        t = time.perf_counter()
        embedder([text])
        single.append(time.perf_counter() - t)
    p50, p95 = pct(single)
    print(f"embedding (all-MiniLM-L6-v2, CPU): {per_s:,.0f} sentences/s in batches of 64; one query p50 {p50:.1f} ms, p95 {p95:.1f} ms")

    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as path:
        storage = ChromaStorage.open(path, embedder="bench")
        filled = 0
        for size in SIZES:
            t = time.perf_counter()
            while filled < size:
                batch = [
                    MemoryRecord(content=f"record {filled + i}", scope=f"/crew/c{(filled + i) % 10}", categories=["bench"], embedding=unit(rng))
                    for i in range(min(1000, size - filled))
                ]
                storage.save(batch)
                filled += len(batch)
            fill_s = time.perf_counter() - t
            plain, scoped, embedded = [], [], []
            for i in range(QUERIES):
                q = unit(rng)
                t = time.perf_counter()
                storage.search(q, limit=5)
                plain.append(time.perf_counter() - t)
                t = time.perf_counter()
                storage.search(q, scope_prefix="/crew/c3", limit=5)
                scoped.append(time.perf_counter() - t)
                t = time.perf_counter()
                storage.search(embedder([sentences[i % len(sentences)]])[0], limit=5)
                embedded.append(time.perf_counter() - t)
            print(f"{size:>7,} records (filled in {fill_s:.1f} s):")
            for name, samples in (
                ("search, embedding excluded", plain),
                ("scoped search, embedding excluded", scoped),
                ("search, embedding included", embedded),
            ):
                p50, p95 = pct(samples)
                verdict = "" if "included" in name else ("  ok" if p95 < GOAL_MS else "  OVER GOAL")
                print(f"    {name:<36} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms{verdict}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
