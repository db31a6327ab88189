"""The wheel carries the default config/ and crews/, and an installed copy finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import REPO, subprocess_env


def test_wheel_ships_the_defaults_and_uses_them(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("mamabear-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("config/agents.yaml", "config/tasks.yaml", "config/models.yaml", "crews/research.yaml", "crews/full_team.yaml"):
        assert f"mamabear/_defaults/{path}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = "from mamabear.config.catalog import Catalog, packaged_root; r = packaged_root(); print(r); print(len(Catalog([r]).crew_files()))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(PYTHONPATH=str(site)), timeout=60)
    assert proc.returncode == 0, proc.stderr
    root, crews = proc.stdout.split()
    assert root == str(site / "mamabear" / "_defaults") and int(crews) >= 4
