"""Local sandbox: session start time and command round trip (p50/p95 ms), in-process and through the CLI."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTS = 20
COMMANDS = 200
CLI_COMMANDS = 15
MAMABEAR = Path(sys.executable).with_name("mamabear")


def percentiles(samples_s: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples_s)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"p50 {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   max {ms[-1]:7.1f} ms   (n={len(ms)})"


def timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        os.environ["MAMABEAR_HOME"] = home
        from mamabear.engine.services import Services
        from mamabear.sandbox.backend import CommandResult

        sessions = Services().sessions()
        starts = [timed(lambda: sessions.start("local", "development")) for _ in range(STARTS)]
        session = sessions.start("local", "development")

        def command(line: str) -> None:
            result = sessions.exec(session, line)
            assert isinstance(result, CommandResult) and result.exit_code == 0, result

        trips = [timed(lambda: command("true")) for _ in range(COMMANDS)]
        edits = [timed(lambda: sessions.edit(session, "create", "f.txt", file_text="x\n" * 100)) for _ in range(COMMANDS)]
        env = {**os.environ, "MAMABEAR_HOME": home}
        cli = [
            timed(lambda: subprocess.run([str(MAMABEAR), "sandbox", "exec", session["id"], "--", "true"], env=env, stdout=subprocess.DEVNULL, check=True))
            for _ in range(CLI_COMMANDS)
        ]
        print("local sandbox (real subprocesses, audit written to SQLite)")
        print(f"  session start (dirs + set-up command)  {percentiles(starts)}")
        print(f"  command round trip (`true`)            {percentiles(trips)}")
        print(f"  file create (audited)                  {percentiles(edits)}")
        print(f"  `mamabear sandbox exec ID -- true`     {percentiles(cli)}")


if __name__ == "__main__":
    main()
