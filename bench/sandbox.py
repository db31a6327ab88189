"""Local sandbox: session start and command round trip, unjailed against the jail (target: the jail adds under 20 ms a command).

Three modes, each in a child process of its own, interleaved over rounds (the machine is noisy; the
ratio to the unjailed baseline is what holds): unjailed (bubblewrap hidden from PATH, isolation:
best-effort), jailed without network, jailed with network (slirp4netns, no host loopback).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTS = 10
COMMANDS = 60
ROUNDS = 3
MODES = ("unjailed", "jail, no network", "jail + network")


def timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def child(mode: str) -> None:
    """One mode's samples, as JSON on stdout (milliseconds)."""
    with tempfile.TemporaryDirectory() as home:
        os.environ["MAMABEAR_HOME"] = home
        from mamabear.engine.services import Services
        from mamabear.sandbox.backend import CommandResult

        sessions = Services().sessions()
        network = mode == "jail + network"
        starts = [timed(lambda: sessions.start("local", "development", network=network)) for _ in range(STARTS)]
        session = sessions.start("local", "development", network=network)

        def command() -> None:
            result = sessions.exec(session, "true")
            assert isinstance(result, CommandResult) and result.exit_code == 0, result

        trips = [timed(command) for _ in range(COMMANDS)]
        edits = [timed(lambda: sessions.edit(session, "create", "f.txt", file_text="x\n" * 100)) for _ in range(COMMANDS)]
        print(json.dumps({"start": [s * 1000 for s in starts], "command": [s * 1000 for s in trips], "edit": [s * 1000 for s in edits]}))


def environment(mode: str, scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    if mode == "unjailed":
        bin_dir = scratch / "bin-without-bwrap"
        if not bin_dir.exists():
            bin_dir.mkdir()
            for tool in Path("/usr/bin").iterdir():
                if tool.name not in ("bwrap", "slirp4netns"):
                    (bin_dir / tool.name).symlink_to(tool)
            (scratch / "config").mkdir()
            (scratch / "config" / "sandbox.yaml").write_text("isolation: best-effort\n")
        env.update(PATH=str(bin_dir), MAMABEAR_CONFIG_DIR=str(scratch))
    return env


def main() -> None:
    samples: dict[str, dict[str, list[float]]] = {mode: {"start": [], "command": [], "edit": []} for mode in MODES}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(ROUNDS):
            for mode in MODES:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode], env=environment(mode, Path(scratch)), capture_output=True, text=True, check=True
                )
                for key, values in json.loads(out.stdout).items():
                    samples[mode][key] += values
    base = {key: statistics.median(values) for key, values in samples["unjailed"].items()}
    print(f"local sandbox, median ms of {ROUNDS} interleaved rounds ({STARTS} starts, {COMMANDS} commands and file edits each)")
    print(f"  {'mode':<20}{'session start':>16}{'command (true)':>18}{'file create':>14}   jail's cost a command")
    for mode in MODES:
        med = {key: statistics.median(values) for key, values in samples[mode].items()}
        cells = "".join(f"{med[k]:>9.1f} ({med[k] / base[k]:4.2f}x)" for k in ("start", "command", "edit"))
        added = med["command"] - base["command"]
        verdict = "" if mode == "unjailed" else f"+{added:.1f} ms ({'ok' if added < 20 else 'over'} the 20 ms target)"
        print(f"  {mode:<20}{cells}   {verdict}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2])
    else:
        main()
