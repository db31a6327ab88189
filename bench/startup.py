"""Start-up time of commands that run no crew (target: under 0.3 s wall each)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.3
RUNS = 15
MAMABEAR = Path(sys.executable).with_name("mamabear")


def wall(args: list[str], env: dict[str, str]) -> list[float]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([str(MAMABEAR), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "MAMABEAR_HOME": home}
        print(f"{'command':<28}{'median s':>10}{'min s':>9}{'max s':>9}{'target s':>10}  verdict")
        for args in (["--help"], ["agents", "list"], ["crews", "list"], ["run", "research", "-i", "topic=x", "--dry-run"]):
            times = wall(args, env)
            median = statistics.median(times)
            verdict = "ok" if median < TARGET_S else "SLOW"
            print(f"{'mamabear ' + ' '.join(args[:2]):<28}{median:>10.3f}{min(times):>9.3f}{max(times):>9.3f}{TARGET_S:>10.2f}  {verdict}")


if __name__ == "__main__":
    main()
