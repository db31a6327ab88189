"""The local sandbox's jail, tried as an agent would try to get out: each row of ESCAPES is one attempt.

Every row runs through `mamabear sandbox exec` in a process of its own, whose environment holds a
provider key, next to a planted SSH key, another session and the run store; then the same rows run
unjailed (isolation: best-effort, no bubblewrap on PATH), which documents which of them a jail closes.
One more test sends escapes through an agent's bash tool in a crew run.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, host_processes, subprocess_env, wait_for
from mamabear.sandbox.jail import support

KEY = "sk-jailtest-0123456789abcdef0123456789"
SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY----- jail-test-ssh-key"
OTHER_SECRET = "another session's notes: otter-42"

pytestmark = pytest.mark.skipif(not support().jail, reason=f"no jail on this machine: {support().why} (`make jail` installs it)")


@dataclass
class World:
    """What a command could reach: paths on this machine, and how to run a command in session A."""

    home: Path  # MAMABEAR_HOME
    user_home: Path  # $HOME of the user running mamabear, with a planted SSH key
    a: str  # the session under attack
    a_work: Path
    b_work: Path  # another session's workspace
    outside: Path  # a file next to nothing the jail shows
    victim: subprocess.Popen  # a process of the user's, outside the jail
    env: dict[str, str]

    audit_before: int = 0

    def exec(self, command: str, timeout: float = 20) -> str:
        self.audit_before = _audit_rows(self)
        done = subprocess.run(
            [sys.executable, "-m", "mamabear", "sandbox", "exec", "--timeout", str(timeout), self.a, "--", command],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO,
            timeout=120,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout + done.stderr


def _unbase64(word: str) -> bytes:
    """What ``word`` decodes to as base64 (its padding made up), or nothing when it is not base64."""
    import binascii

    try:
        return base64.b64decode(word.rstrip("=") + "=" * (-len(word.rstrip("=")) % 4), validate=False)
    except (binascii.Error, ValueError):
        return b""


def _rows_leak(world: World) -> list[tuple[str, str, object]]:
    """(name, command, held): ``held(output, world)`` is True when the attempt failed."""
    db = world.home / "mamabear.db"
    return [
        ("read a planted SSH key", f"cat {world.user_home}/.ssh/id_ed25519", lambda out, w: SSH_KEY not in out),
        ("read /etc/shadow", "cat /etc/shadow", lambda out, w: "root:" not in out),
        ("list the root's home", "ls -a /root ~root", lambda out, w: ".ssh" not in out),
        ("read the run store", f"head -c 64 {db}; python3 -c \"print(open('{db}','rb').read(16))\"", lambda out, w: "SQLite format" not in out),
        (
            "delete audit rows in the run store",
            f"python3 -c \"import sqlite3; c=sqlite3.connect('{db}'); c.execute('delete from sandbox_actions'); c.commit()\"",
            _audit_intact,
        ),
        ("read another session's workspace", f"cat {world.b_work}/notes.txt; ls {world.home}/sandboxes", _other_session_hidden),
        ("write into another session's workspace", f"echo pwned > {world.b_work}/pwned.txt", lambda out, w: not (w.b_work / "pwned.txt").exists()),
        (
            "write next to the workspace",
            f"touch ../OUTSIDE.txt; touch {world.a_work.parent}/OUTSIDE2.txt",
            lambda out, w: not list(w.a_work.parent.glob("OUTSIDE*")),
        ),
        (
            "write into /etc",
            "echo pwned > /etc/mamabear-pwned; touch /usr/pwned",
            lambda out, w: not Path("/etc/mamabear-pwned").exists() and not Path("/usr/pwned").exists(),
        ),
        ("follow a planted symlink out", "cat planted_link; cat planted_dir/outside.txt", lambda out, w: "outside secret" not in out),
        ("kill a process outside", f"kill -9 {world.victim.pid}; pkill -9 -f 'sleep 1234.5'", lambda out, w: w.victim.poll() is None),
        (
            "read the parent's environment, reversed and encoded",
            "for p in /proc/[0-9]*; do cat $p/environ; done 2>/dev/null | tr '\\0' '\\n' | grep -a KEY | rev | base64 -w0; echo",
            _no_key_encoded,
        ),
        ("find a key in the environment", "env; cat /proc/self/environ", lambda out, w: KEY not in out and "OPENAI_API_KEY" not in out),
        (
            "run as root",
            "id -u; cat /proc/self/status | grep -i capeff",
            lambda out, w: out.split()[0] != "0" and "0000003fffffffff" not in out and "000001ffffffffff" not in out,
        ),
        (
            "leave a process running after exec",
            "nohup sleep 1001.5 >/dev/null 2>&1 & setsid sleep 1002.5 & disown -a; echo left",
            lambda out, w: not host_processes("sleep 1001.5") and not host_processes("sleep 1002.5"),
        ),
        (
            "reach a service on the host's loopback",
            f"python3 -c \"import urllib.request; print(urllib.request.urlopen('{world.env['MB_TEST_LOOPBACK']}', timeout=3).read())\"",
            lambda out, w: "loopback-secret" not in out,
        ),
    ]


def _other_session_hidden(out: str, world: World) -> bool:
    listed = any(line.strip() == world.b_work.parent.name for line in out.splitlines())  # `ls` printed its id
    return OTHER_SECRET not in out and not listed


def _audit_rows(world: World) -> int:
    with sqlite3.connect(world.home / "mamabear.db") as db:
        return int(db.execute("select count(*) from sandbox_actions").fetchone()[0])


def _audit_intact(out: str, world: World) -> bool:
    return _audit_rows(world) > world.audit_before  # the rows before, and this command's own


def _no_key_encoded(out: str, world: World) -> bool:
    lines = [line for line in out.splitlines() if line and not line.startswith("[")]
    try:
        decoded = base64.b64decode(lines[0])[::-1].decode("utf-8", "replace") if lines else ""
    except ValueError:
        decoded = ""
    return KEY not in decoded and KEY not in out


def serve(body: bytes):  # noqa: ANN201 - an http.server.ThreadingHTTPServer
    """A service on this machine's loopback that answers every GET with ``body``."""
    import http.server
    import threading

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def world(isolated: Path, tmp_path: Path) -> World:
    user_home = tmp_path / "user"
    (user_home / ".ssh").mkdir(parents=True)
    (user_home / ".ssh" / "id_ed25519").write_text(SSH_KEY + "\n")

    server = serve(b"loopback-secret")
    env = subprocess_env(MAMABEAR_HOME=str(isolated), HOME=str(user_home), OPENAI_API_KEY=KEY)
    env["MB_TEST_LOOPBACK"] = f"http://127.0.0.1:{server.server_address[1]}/"

    def start() -> dict:
        out = subprocess.run([sys.executable, "-m", "mamabear", "sandbox", "start", "--json"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    a, b = start(), start()
    a_work, b_work = Path(a["workdir"]), Path(b["workdir"])
    (b_work / "notes.txt").write_text(OTHER_SECRET + "\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("outside secret\n")
    (a_work / "planted_link").symlink_to(outside)
    (a_work / "planted_dir").symlink_to(tmp_path)
    victim = subprocess.Popen(["sleep", "1234.5"])
    system_writes = [Path("/etc/mamabear-pwned"), Path("/usr/pwned")]  # what the unjailed rows can leave behind (as root)
    for path in system_writes:
        path.unlink(missing_ok=True)
    yield World(isolated, user_home, a["id"], a_work, b_work, outside, victim, env)
    for path in system_writes:
        path.unlink(missing_ok=True)
    victim.kill()
    victim.wait()
    server.shutdown()
    for marker in ("sleep 1001.5", "sleep 1002.5"):
        for pid in host_processes(marker):
            os.kill(pid, signal.SIGKILL)


def test_every_escape_attempt_fails_in_the_jail(world: World) -> None:
    opened = []
    for name, command, held in _rows_leak(world):
        out = world.exec(command)
        if not held(out, world):
            opened.append(f"{name}: {out[:300]!r}")
    assert not opened, "\n".join(opened)
    assert world.outside.read_text() == "outside secret\n"


def test_the_jail_bounds_a_fork_bomb_and_a_flood_of_output_and_the_session_survives(world: World) -> None:
    bomb = world.exec("f(){ f & f & wait; }; f", timeout=5)  # not the textbook form, which the policy refuses
    assert "timed out" in bomb or "Resource temporarily unavailable" in bomb, bomb[-500:]
    flood = world.exec("head -c 100000000 /dev/zero | tr '\\0' a; echo end")
    assert "bytes of output cut" in flood and len(flood) < 200_000 and "end" in flood
    assert "alive" in world.exec("echo alive")


def test_a_session_without_network_reaches_nothing(world: World) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mamabear", "sandbox", "start", "--no-network", "--json"], capture_output=True, text=True, env=world.env, cwd=REPO, timeout=120
    )
    world.a = json.loads(out.stdout)["id"]
    shown = world.exec("python3 -c \"import socket; print(socket.if_nameindex()); socket.create_connection(('1.1.1.1', 53), 3)\"")
    assert "[(1, 'lo')]" in shown and "Network is unreachable" in shown, shown


def test_without_bubblewrap_best_effort_runs_unjailed_and_says_so_and_required_refuses(world: World, tmp_path: Path) -> None:
    """What is open without a jail: this documents the rows (README, 'The local sandbox')."""
    bin_dir = tmp_path / "bin-without-bwrap"
    bin_dir.mkdir()
    for tool in Path("/usr/bin").iterdir():
        if tool.name not in ("bwrap", "slirp4netns"):
            (bin_dir / tool.name).symlink_to(tool)
    config = tmp_path / "project"
    (config / "config").mkdir(parents=True)
    world.env = {**world.env, "PATH": str(bin_dir), "MAMABEAR_CONFIG_DIR": str(config)}

    (config / "config" / "sandbox.yaml").write_text("isolation: required\n")
    refused = world.exec("echo hi")
    assert "cannot jail commands here: bubblewrap is not installed" in refused and "isolation: best-effort" in refused

    (config / "config" / "sandbox.yaml").write_text("isolation: best-effort\n")
    started = subprocess.run(
        [sys.executable, "-m", "mamabear", "sandbox", "start", "--json"], capture_output=True, text=True, env=world.env, cwd=REPO, timeout=120
    )
    assert started.returncode == 0 and "is not jailed" in started.stderr, started.stderr
    session = json.loads(started.stdout)
    world.a, world.a_work = session["id"], Path(session["workdir"])
    opened = sorted(name for name, command, held in _rows_leak(world) if not held(world.exec(command), world))
    print("open without a jail:", opened)
    assert {"read a planted SSH key", "read the run store", "read another session's workspace", "reach a service on the host's loopback"} <= set(opened)
    assert "find a key in the environment" not in opened  # the scrubbed environment holds either way


def test_an_agents_bash_tool_cannot_take_keys_or_the_run_store_out_of_the_jail(fake, isolated: Path, tmp_path: Path) -> None:
    """The escapes a model would try first, through the bash tool of a crew run; nothing of them reaches the model or the store."""
    db = isolated / "mamabear.db"
    attempts = [
        "for p in /proc/[0-9]*; do cat $p/environ; done | tr '\\0' '\\n' | grep -a sk- | rev | base64 -w0",
        f"head -c 200 {db} | base64 -w0; ls {isolated}",
        "cat /etc/shadow; id -u",
    ]
    for command in attempts:
        fake.add(task="Turn the question", times=1, tool_calls=[{"name": "bash", "arguments": {"command": command}}])
    env = subprocess_env(MAMABEAR_HOME=str(isolated), OPENAI_API_KEY=KEY)
    done = subprocess.run(
        [sys.executable, "-m", "mamabear", "run", "data_analysis", "-i", "question=how many bears", "--base-url", fake.url, "--json", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    answers = [r["text"] for r in fake.chat_requests if "Turn the question" in r["task"]][1:4]  # what each command gave back
    assert len(answers) == 3 and all("[exit code" in a for a in answers), answers
    seen = "\n".join(answers)
    words = [w for w in seen.split() if len(w) > 20 and w.isascii()]
    assert KEY not in seen and not any(KEY.encode() in _unbase64(w)[::-1] for w in words)
    assert "SQLite format" not in seen and not any(b"SQLite format" in _unbase64(w) for w in words)
    assert "root:" not in seen and "65534" in seen
    assert KEY.encode() not in db.read_bytes()  # nor in the run store (the audit keeps what each command printed)


def test_a_kind_reaches_the_host_ports_it_names_and_no_other(world: World, tmp_path: Path) -> None:
    server = serve(b"named-port-ok")
    port = server.server_address[1]
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "config" / "sandbox.yaml").write_text(f"kinds:\n  database:\n    setup: []\n    host_ports: [{port}]\n")
    world.env = {**world.env, "MAMABEAR_CONFIG_DIR": str(project)}
    started = subprocess.run(
        [sys.executable, "-m", "mamabear", "sandbox", "start", "--kind", "database", "--json"], capture_output=True, text=True, env=world.env, cwd=REPO
    )
    world.a = json.loads(started.stdout)["id"]
    fetch = 'python3 -c "import urllib.request, sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"'
    try:
        assert "named-port-ok" in world.exec(f"{fetch} http://127.0.0.1:{port}/")
        assert "loopback-secret" not in world.exec(f"{fetch} {world.env['MB_TEST_LOOPBACK']}")  # a port it did not name
        assert "named-port-ok" in world.exec(f"{fetch} http://127.0.0.1:{port}/again")  # every command, not only the first
    finally:
        server.shutdown()


def _system_python_runs_mamabear() -> bool:
    python = Path("/usr/bin/python3")
    return os.geteuid() == 0 and python.exists() and subprocess.run([str(python), "-c", "import sys; assert sys.version_info[:2] == (3, 11)"]).returncode == 0


@pytest.mark.skipif(not _system_python_runs_mamabear(), reason="needs root (to become another user) and Debian's Python 3.11 beside this venv's")
def test_run_by_an_unprivileged_user_the_jail_holds_with_a_user_namespace(tmp_path: Path) -> None:
    """mamabear run by nobody: bubblewrap makes its own user namespace; the user's files stay out of sight."""
    top = Path(tempfile.mkdtemp(prefix="mb-user-"))  # not under pytest's 0700 directory
    try:
        top.chmod(0o755)
        home = top / "home"
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "id_ed25519").write_text(SSH_KEY)
        for path in (top, home, home / ".ssh", home / ".ssh" / "id_ed25519"):
            os.chown(path, 65534, 65534)
        site = next((REPO / ".venv" / "lib").glob("python3*/site-packages"))
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "MAMABEAR_HOME": str(home / ".mamabear"),
            "PYTHONPATH": f"{REPO / 'src'}:{site}",
            "OPENAI_API_KEY": KEY,
        }
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-m", "mamabear"]
        started = subprocess.run([*as_nobody, "sandbox", "start", "--json"], capture_output=True, text=True, env=env, cwd=top, timeout=120)
        assert started.returncode == 0, started.stderr
        session = json.loads(started.stdout)["id"]
        checks = f"id -u; cat {home}/.ssh/id_ed25519; ls {home}/.mamabear; touch /etc/x; echo made > made.txt; cat /proc/*/environ | grep -a -c sk-"
        out = subprocess.run([*as_nobody, "sandbox", "exec", session, "--", checks], capture_output=True, text=True, env=env, cwd=top, timeout=120)
        text = out.stdout + out.stderr
        assert out.stdout.splitlines()[0] == "65534", text
        assert SSH_KEY not in text and "mamabear.db" not in text and "Read-only file system" in text, text
        assert (home / ".mamabear" / "sandboxes" / session / "work" / "made.txt").read_text() == "made\n"
        assert text.rstrip().endswith("0"), text  # no process it can see holds a key
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _start(world: World, *flags: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "mamabear", "sandbox", "start", "--json", *flags], capture_output=True, text=True, env=world.env, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_what_the_jail_can_write_never_changes_what_mamabear_reads_or_writes(world: World, tmp_path: Path) -> None:
    """The session's settings, the port relay and its sockets are out of the jail's reach (found in review: a jail that
    rewrote its settings got the network back and a host port, and a symlink made mamabear overwrite a host file)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "config" / "sandbox.yaml").write_text("kinds:\n  closed:\n    setup: []\n    network: false\n    host_ports: [9]\n")
    world.env = {**world.env, "MAMABEAR_CONFIG_DIR": str(project)}
    world.a = _start(world, "--kind", "closed")["id"]
    loopback_port = world.env["MB_TEST_LOOPBACK"].rsplit(":", 1)[1].strip("/")
    tamper = (
        f'echo \'{{"network": true, "host_ports": [{loopback_port}]}}\' > /run/sandbox/jail.json; '
        f"ln -sf {victim} /run/sandbox/relay.py; rm -rf /run/sandbox/ports; ln -s {victim.parent} /run/sandbox/ports; "
        "touch /run/mamabear/x; rm -f /run/mamabear/relay.py; echo tampered"
    )
    assert "tampered" in world.exec(tamper)
    fetch = f"import urllib.request; print(urllib.request.urlopen('{world.env['MB_TEST_LOOPBACK']}', timeout=3).read())"
    after = world.exec(f'python3 -c "import socket; print(socket.if_nameindex())"; python3 -c "{fetch}"')
    assert "[(1, 'lo')]" in after and "loopback-secret" not in after, after
    assert victim.read_text() == "untouched\n" and not (victim.parent / "9.sock").exists()


def test_slirp4netns_ends_when_mamabear_is_killed_mid_command(world: World) -> None:
    """Found in review: a SIGKILLed `sandbox exec` left its slirp4netns running, as root, for ever."""
    proc = subprocess.Popen([sys.executable, "-m", "mamabear", "sandbox", "exec", world.a, "--", "sleep 30"], env=world.env, cwd=REPO)
    try:

        def slirp_children() -> list[int]:
            return [pid for pid in host_processes("slirp4netns") if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(proc.pid)]

        wait_for(slirp_children, timeout=60, what="slirp4netns")
        mine = slirp_children()
        proc.kill()
        proc.wait()
        wait_for(
            lambda: (
                not [pid for pid in mine if Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:1]]
            ),
            timeout=10,
            what="slirp4netns to end",
        )
    finally:
        proc.kill()


def test_file_tools_never_write_outside_while_a_command_swaps_a_directory_for_a_link(world: World, tmp_path: Path) -> None:
    """Found in review: file_create raced a jailed command flipping d/ to a symlink, and wrote outside (as root)."""
    from mamabear.engine.services import Services

    outside = tmp_path / "swap-target"
    outside.mkdir(mode=0o777)
    flipper = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mamabear",
            "sandbox",
            "exec",
            "--timeout",
            "8",
            world.a,
            "--",
            f"while true; do rm -rf d; ln -s {outside} d; rm -f d; mkdir d; done",
        ],
        env=world.env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ["MAMABEAR_HOME"] = world.env["MAMABEAR_HOME"]
    sessions = Services().sessions()
    session = sessions.get(world.a)
    try:
        for i in range(1500):
            sessions.edit(session, "create", f"d/pwn{i % 7}", file_text="x\n")
    finally:
        flipper.wait(timeout=60)
    assert list(outside.iterdir()) == []


def test_a_command_too_long_to_start_is_one_sentence(world: World) -> None:
    from mamabear.engine.services import Services
    from mamabear.sandbox.backend import SandboxError

    os.environ["MAMABEAR_HOME"] = world.env["MAMABEAR_HOME"]
    sessions = Services().sessions()
    with pytest.raises(SandboxError, match="too long .* write it to a file"):
        sessions.exec(sessions.get(world.a), "echo " + "x" * 200_000)
    assert "still fine" in world.exec("echo still fine")


def _said(out: str) -> str:
    """The output with its whitespace made single spaces (the CLI wraps a long note)."""
    return " ".join(out.split())


def _quota(world: World, tmp_path: Path, mib: int) -> None:
    project = tmp_path / "quota-project"
    (project / "config").mkdir(parents=True)
    (project / "config" / "sandbox.yaml").write_text(f"limits:\n  workspace_mib: {mib}\n")
    world.env = {**world.env, "MAMABEAR_CONFIG_DIR": str(project)}


def test_a_jailed_command_cannot_make_a_user_namespace_whoever_runs_mamabear(world: World) -> None:
    """Found in review: as root the jail had no user namespace of its own, so --disable-userns was not passed, and
    `unshare -r` gave a command root with every capability inside (tmpfs and network namespaces worked)."""
    clone = (  # clone(CLONE_NEWUSER | SIGCHLD) itself, on x86-64 (56 is clone's number there)
        'python3 -c "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); r = libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0); '
        "os._exit(0) if r == 0 else print('clone', 'USERNS-MADE' if r > 0 else os.strerror(ctypes.get_errno()))\""
    )
    tries = "unshare -r id -u && echo USERNS-MADE; unshare -U true && echo USERNS-MADE; unshare -r -n -m true && echo USERNS-MADE"
    out = world.exec(tries + ("; " + clone if os.uname().machine == "x86_64" else ""))
    assert "USERNS-MADE" not in out and "Operation not permitted" in out, out
    # threads and processes still start (clone3 is refused, and the C library falls back to clone)
    fine = world.exec(
        "python3 -c \"import threading, subprocess; t = threading.Thread(target=print, args=('thread',)); t.start(); t.join(); "
        "print(subprocess.run(['echo', 'child'], capture_output=True, text=True).stdout.strip())\""
    )
    assert fine.split()[:2] == ["thread", "child"], fine


def test_sandbox_stop_kills_a_command_still_running_in_the_session(world: World) -> None:
    """Found in review: a command running at `mamabear sandbox stop` went on for 85 s and wrote its file."""
    command = "echo started > started.txt; (sleep 9.25; echo late > late-background.txt) & sleep 9.5; echo late > late.txt"
    running = subprocess.Popen(
        [sys.executable, "-m", "mamabear", "sandbox", "exec", "--timeout", "60", world.a, "--", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=world.env,
        cwd=REPO,
    )
    try:
        wait_for(lambda: (world.a_work / "started.txt").exists(), timeout=60, what="the command to start")
        started = time.monotonic()
        stopped = subprocess.run([sys.executable, "-m", "mamabear", "sandbox", "stop", world.a], capture_output=True, text=True, env=world.env, cwd=REPO)
        assert stopped.returncode == 0, stopped.stderr
        out = running.communicate(timeout=30)[0]
        assert time.monotonic() - started < 9, "the command ran on after the stop"
        wait_for(lambda: not host_processes("sleep 9.25") and not host_processes("sleep 9.5"), timeout=5, what="the jail's processes to end")
        time.sleep(max(0.0, 11 - (time.monotonic() - started)))  # past when they would have written
        assert not list(world.a_work.glob("late*")), out
        assert "the session was stopped (sandbox stop) while the command ran" in _said(out), out
    finally:
        running.kill()
        running.wait()


def test_writing_past_the_session_quota_is_stopped_and_the_result_says_so(world: World, tmp_path: Path) -> None:
    """Found in review: the workspace had no quota (1 GiB a file, 1.9 GB written)."""
    _quota(world, tmp_path, 32)
    one = world.exec("head -c 64M /dev/zero > big.bin; echo next")
    assert (world.a_work / "big.bin").stat().st_size <= 32 << 20
    assert "next" in one and "fill their quota of 32 MiB (workspace_mib)" in _said(one), one
    many = world.exec("rm big.bin; for i in $(seq 100); do head -c 1M /dev/zero > f$i.bin; sleep 0.02; done; echo finished")
    written = list(world.a_work.glob("f*.bin"))
    assert "finished" not in many and "the command was killed: it took the session's files (workspace and /tmp) past their quota of 32 MiB" in _said(many), many
    assert 32 <= len(written) < 64, len(written)  # past the quota: what it wrote between two measurements (a quarter second)
    freed = world.exec("rm f*.bin; echo freed")
    assert "freed" in freed and "quota" not in freed and not list(world.a_work.glob("f*.bin")), freed


def test_tmp_is_bounded_and_nothing_else_outside_the_workspace_can_fill_ram(world: World, tmp_path: Path) -> None:
    """Found in review: / and /var/tmp were tmpfs in RAM without a bound (512 MiB written raised the host's Shmem as much)."""
    _quota(world, tmp_path, 32)
    tmp = world.a_work.parent / "tmp"  # the session's /tmp, on disk
    out = world.exec("head -c 64M /dev/zero > /tmp/big; echo next")
    assert (tmp / "big").stat().st_size <= 32 << 20 and "fill their quota of 32 MiB" in _said(out), out
    many = world.exec("rm /tmp/big; for i in $(seq 100); do head -c 1M /dev/zero > /var/tmp/t$i; sleep 0.02; done; echo finished")
    assert "finished" not in many and "past their quota of 32 MiB" in _said(many) and len(list(tmp.glob("t*"))) < 64, many
    world.exec("rm -f /tmp/t*")
    rest = world.exec(
        "for f in /x /run/x /dev/x /var/x; do touch $f 2>/dev/null && echo WROTE $f; done; "
        "for i in 1 2 3; do head -c 30M /dev/zero > /dev/shm/s$i || echo shm full at $i; done; echo done"
    )
    assert "WROTE" not in rest and "shm full at 3" in rest and "No space left on device" in rest, rest


def test_the_jail_has_a_path_of_its_own_not_the_callers(world: World) -> None:
    """Found in review: the caller's PATH (its venvs, its home's bin folders) showed inside the jail."""
    world.env = {**world.env, "PATH": f"/host-only/bin:{world.env['PATH']}"}
    shown = world.exec("echo $PATH").split()[0]
    assert shown == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", shown
    world.exec("export PATH=/workspace/bin:$PATH")
    assert world.exec("echo $PATH").split()[0].startswith("/workspace/bin:/usr/local/sbin:")  # the session's own changes persist
