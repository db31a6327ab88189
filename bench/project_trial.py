"""Real public CrewAI projects, each run as it is under plain CrewAI and under `mamabear run`, against one loopback model.

    python bench/project_trial.py /path/to/crewAI-examples [more roots...]

A root is a checkout (or an extracted snapshot) holding projects: every folder with a pyproject.toml, or a main.py
with no pyproject above it, is one project. Plain CrewAI runs what `crewai run` runs (the `[project.scripts]` entry:
`run_crew`/the project's name for a crew, `kickoff` for a flow; `python main.py` for a script-style project). mamabear
runs `mamabear run --base-url` at the project's root with the inputs its main.py passes to kickoff. Both talk to the
scripted server in tests/fakellm.py with the same placeholder keys, so a tool that needs the network fails in both.
The table says, for each project, whether each side ended with exit 0, and the last line of mamabear's error.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomllib

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakellm import FakeLLM  # noqa: E402

TIMEOUT_S = 300
PYTHON = Path(sys.executable)
MAMABEAR = PYTHON.with_name("mamabear")
KEYS = ("SERPER_API_KEY", "BROWSERLESS_API_KEY", "EXA_API_KEY", "FIRECRAWL_API_KEY", "SEC_API_API_KEY", "TAVILY_API_KEY")


def projects(root: Path) -> list[Path]:
    found = sorted(p.parent for p in root.rglob("pyproject.toml") if "site-packages" not in p.parts)
    scripts = [
        p.parent
        for p in root.rglob("main.py")
        if "src" not in p.parts and not any(parent in found or (parent / "pyproject.toml").exists() for parent in p.parents)
    ]
    return sorted(set(found) | set(scripts))


def entry(project: Path) -> tuple[str, list[str]] | None:
    """What `crewai run` runs: (the module's function, the args to run it by), or None when nothing names one."""
    pyproject = project / "pyproject.toml"
    if not pyproject.exists():
        return ("main.py", [str(PYTHON), "main.py"]) if (project / "main.py").exists() else None
    data = tomllib.loads(pyproject.read_text())
    scripts = data.get("project", {}).get("scripts", {})
    kind = data.get("tool", {}).get("crewai", {}).get("type", "crew")
    name = data.get("project", {}).get("name", "")
    legacy_flow = "kickoff" in scripts and "run_crew" not in scripts  # `crewai flow kickoff` runs it
    for key in ("kickoff",) if kind == "flow" or legacy_flow else ("run_crew", name, name.replace("-", "_")):
        if key in scripts:
            module, func = scripts[key].split(":")
            code = f"import sys; sys.path.insert(0, 'src'); import {module} as m; m.{func}()"
            return (scripts[key], [str(PYTHON), "-c", code])
    if (project / "main.py").exists():
        return ("main.py", [str(PYTHON), "main.py"])
    return None


def main_inputs(project: Path) -> dict[str, str]:
    """The inputs main.py's run()/kickoff() passes: the first `inputs = {...}` a literal (or a datetime call) makes."""
    for main in sorted(project.rglob("main.py")):
        try:
            tree = ast.parse(main.read_text())
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "inputs" for t in node.targets):
                if isinstance(node.value, ast.Dict):
                    inputs = {}
                    for key, value in zip(node.value.keys, node.value.values, strict=True):
                        try:
                            inputs[ast.literal_eval(key)] = str(
                                eval(compile(ast.Expression(value), "main", "eval"), {"datetime": __import__("datetime"), "str": str})
                            )  # noqa: S307
                        except Exception:  # noqa: BLE001
                            inputs[ast.literal_eval(key)] = "trial"
                    return inputs
    return {}


def run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, float]:
    start = time.perf_counter()
    try:
        done = subprocess.run(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT_S)
        code, err = done.returncode, done.stderr
    except subprocess.TimeoutExpired as stopped:
        code, err = -1, f"timed out after {TIMEOUT_S} s " + (stopped.stderr or b"").decode(errors="replace")[-500:]
    lines = [line for line in err.strip().splitlines() if line.strip()]
    return code, lines[-1][:150] if lines else "", time.perf_counter() - start


def main() -> None:
    roots = [Path(a).resolve() for a in sys.argv[1:]]
    server = FakeLLM().start()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for root in roots:
            for project in projects(root):
                env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "MAMABEAR_", "OTEL_", "LANGFUSE_"))}
                env |= {k: "trial-key" for k in KEYS}
                env |= {
                    "OPENAI_API_KEY": "sk-trial",
                    "OPENAI_BASE_URL": f"{server.url}/v1",
                    "OPENAI_API_BASE": f"{server.url}/v1",
                    "CREWAI_TRACING_ENABLED": "false",
                    "CREWAI_DISABLE_TELEMETRY": "true",
                    "OTEL_SDK_DISABLED": "true",
                    "MAMABEAR_HOME": str(Path(scratch) / project.name / "home"),
                    "CREWAI_STORAGE_DIR": str(Path(scratch) / project.name / "crewai"),
                }
                named = entry(project)
                plain = run(named[1], project, env) if named else (None, "no entry point", 0.0)
                inputs = [arg for k, v in main_inputs(project).items() for arg in ("-i", f"{k}={v}")]
                ours = run([str(MAMABEAR), "run", "--base-url", server.url, "--quiet", *inputs], project, env)
                rows.append((str(project.relative_to(root)), named[0] if named else "-", plain, ours))
                print(f"{rows[-1][0]:<50} plain={plain[0]!s:>4} ({plain[2]:5.1f} s)  mamabear={ours[0]!s:>4} ({ours[2]:5.1f} s)", flush=True)
                for who, (code, said, _) in (("plain", plain), ("mamabear", ours)):
                    if code:
                        print(f"    {who}: {said}", flush=True)
    server.stop()
    plain_ok = [r for r in rows if r[2][0] == 0]
    ours_ok = [r for r in rows if r[3][0] == 0]
    both = [r for r in plain_ok if r[3][0] == 0]
    refused = [r for r in plain_ok if r[3][0] == 2]
    print(f"\n{len(rows)} projects: plain CrewAI ran {len(plain_ok)}, mamabear ran {len(ours_ok)}")
    print(f"of the {len(plain_ok)} plain CrewAI ran, mamabear ran {len(both)} and refused {len(refused)}")
    for name, _, plain, ours in rows:
        if plain[0] == 0 and ours[0] != 0:
            print(f"  runs on plain CrewAI only: {name}: {ours[1]}")
        if plain[0] != 0 and ours[0] == 0:
            print(f"  runs under mamabear only: {name} (plain: {plain[1]})")


if __name__ == "__main__":
    main()
