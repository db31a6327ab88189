"""A disk that cannot be written (full, read-only) is one sentence and exit 2, and what is stored is kept.

The small or read-only disk is a tmpfs or a read-only bind mount in a user and mount namespace of the test's own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, subprocess_env, wait_for


def _user_namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


NAMESPACES = pytest.mark.skipif(not _user_namespaces(), reason="needs unshare -rm (user and mount namespaces)")


@NAMESPACES
def test_a_full_disk_stops_the_run_with_one_sentence_and_keeps_what_is_stored(fake, isolated, tmp_path):
    """MAMABEAR_HOME on a 64 MiB tmpfs (in a mount namespace of its own) that fills up during task 2."""
    go, out = tmp_path / "go", tmp_path / "out"
    home = tmp_path / "small-home"
    home.mkdir()
    fake.add(task="Check every claim", delay=2.0)  # research's task 2: the disk fills while it thinks
    python = sys.executable
    script = f"""
mount -t tmpfs -o size=64m tmpfs {home} || exit 99
{python} -m mamabear run research -i topic=otters --base-url {fake.url} --no-cache > {out}.run 2> {out}.err &
pid=$!
while [ ! -e {go} ]; do sleep 0.05; done
dd if=/dev/zero of={home}/filler bs=1M count=100 2>/dev/null
wait $pid; echo $? > {out}.code
rm {home}/filler
{python} -m mamabear runs list --json > {out}.list 2>> {out}.err
"""
    proc = subprocess.Popen(["unshare", "-rm", "sh", "-c", script], env=subprocess_env(MAMABEAR_HOME=str(home)), cwd=REPO)
    wait_for(lambda: [r for r in fake.chat_requests if "Check every claim" in r["task"]], what="task 2's call")
    go.touch()
    assert proc.wait(timeout=120) == 0
    err = Path(f"{out}.err").read_text()
    assert Path(f"{out}.code").read_text().strip() == "2", err
    assert "Traceback" not in err  # 4d96280: a 40-line traceback
    final = [line for line in err.splitlines() if line.startswith("error:")]
    assert final and "disk is full" in final[0] and "mamabear.db" in final[0], err
    runs = json.loads(Path(f"{out}.list").read_text())
    assert len(runs) == 1 and runs[0]["status"] in ("failed", "interrupted")  # recorded, or noticed once space was back


@NAMESPACES
def test_commands_on_a_read_only_home_say_so_in_one_sentence(cli, isolated, tmp_path):
    assert cli("memory", "list").code == 0  # the home and its memory exist
    python = sys.executable
    script = f"""
mount --bind {isolated} {isolated} && mount -o remount,ro,bind {isolated} || exit 99
{python} -m mamabear memory list; echo "memory=$?"
{python} -m mamabear run research -i topic=otters --dry-run > /dev/null; echo "dry=$?"
"""
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], env=subprocess_env(MAMABEAR_HOME=str(isolated)), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert "memory=2" in done.stdout, done.stderr  # 4d96280: a traceback from the memory's lock file, exit 1
    assert "Traceback" not in done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert said and "Read-only file system" in said[0] and str(isolated) in said[0]
