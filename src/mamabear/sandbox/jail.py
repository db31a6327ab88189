"""The local sandbox's jail: each command in a bubblewrap container that sees the system read-only and its session only.

Inside, a command sees ``/usr``, ``/etc`` and ``/opt`` read-only, its session's workspace
and the session's own ``/tmp`` (``/var/tmp`` leads there too: both on disk, within the
session's quota, ``quota.py``), a fresh ``/proc`` and ``/dev`` (its ``/dev/shm`` a tmpfs of
``SHM_MIB``, the only place it writes in RAM; the rest is read-only), and nothing else: not
the user's home, not ``$MAMABEAR_HOME`` (the run store, other sessions, checkpoints,
memory), not the host's other processes (a new PID namespace, which also ends everything
the command left running when it returns, and which ``sandbox stop`` kills, ``inflight.py``).
It runs with no capabilities and no new privileges, with its own ``PATH``, and cannot make a
user namespace (a seccomp filter, ``seccomp.py``); as an unprivileged user: the caller's own,
or ``nobody`` when mamabear runs as root (root outside would own ``/etc/shadow`` inside too).

Network: with ``network: true`` the jail gets its own network namespace connected to the
internet by slirp4netns, which refuses the host's loopback (Redis, PostgreSQL, the model
servers on 127.0.0.1); with ``network: false`` it has a loopback of its own and nothing else.
Without slirp4netns a networked jail shares the host's network, loopback included, and
says so.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mamabear.sandbox import inflight, seccomp
from mamabear.sandbox import relay as relay_module
from mamabear.sandbox.ports import HostPorts

NOBODY = 65534  # the user a root caller's commands run as
SYSTEM_RO = ("/usr", "/etc", "/opt")  # read-only inside; /bin, /lib and the rest follow /usr when they are symlinks to it
MERGED = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SLIRP_READY_S = 5.0
WORK = "/workspace"  # where a session's workspace is inside its jail (its home and working directory)
STATE = "/run/sandbox"  # the session's saved shell state, inside
CONTROL = "/run/mamabear"  # the port relay and its sockets, inside (read-only)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the jail's own, whatever the caller's is
SHM_MIB = 64  # /dev/shm, the one folder the jail writes in RAM


@dataclass(frozen=True)
class Support:
    """What this machine offers the jail; ``why`` says what is missing, in a sentence's second half."""

    jail: bool
    why: str = ""
    bwrap: str | None = None
    slirp: str | None = None  # None: a networked jail shares the host's network
    setpriv: str | None = None
    version: str = ""
    slirp_why: str = "slirp4netns is not installed"  # why ``slirp`` is None

    @property
    def summary(self) -> str:
        if not self.jail:
            return f"no jail: {self.why}"
        net = "network through slirp4netns (no host loopback)" if self.slirp else f"network shared with the host ({self.slirp_why})"
        who = "commands as nobody" if os.geteuid() == 0 else "commands as you"
        userns = "" if seccomp.program() is not None or os.geteuid() != 0 else f", user namespaces not blocked (no seccomp filter for {platform.machine()})"
        return f"bubblewrap {self.version}: {who}, {net}{userns}"


INSTALL_HINT = "install it with `sudo apt-get install bubblewrap slirp4netns` (Debian, Ubuntu) or your package manager"


@lru_cache(maxsize=1)
def support() -> Support:
    """Whether bubblewrap runs here, tried once per process (a kernel may forbid user namespaces)."""
    if not sys.platform.startswith("linux"):
        return Support(False, f"bubblewrap needs Linux (this is {sys.platform})")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Support(False, f"bubblewrap is not installed; {INSTALL_HINT}")
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and setpriv is None:
        return Support(False, "setpriv (util-linux) is not installed, and a root caller's commands must run as nobody")
    program, theirs = seccomp.program(), list[int]()
    try:
        filtered = ["--seccomp", str(_readable(program, theirs))] if program else []  # a kernel without seccomp: no jail
        tried = subprocess.run(
            [bwrap, "--ro-bind", "/", "/", *_unshare(), *filtered, "--die-with-parent", "true"], capture_output=True, text=True, timeout=10, pass_fds=theirs
        )
        version = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10).stdout.split()[-1:]
    except (OSError, subprocess.SubprocessError) as exc:
        return Support(False, f"bubblewrap cannot start ({exc})")
    finally:
        for fd in theirs:
            os.close(fd)
    if tried.returncode != 0:
        reason = (tried.stderr.strip().splitlines() or ["exit code " + str(tried.returncode)])[-1]
        return Support(False, f"bubblewrap cannot make a jail here ({reason}); user namespaces may be switched off (sysctl kernel.unprivileged_userns_clone)")
    slirp, slirp_why = shutil.which("slirp4netns"), "slirp4netns is not installed"
    if slirp and os.geteuid() != 0 and not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        slirp, slirp_why = None, "slirp4netns cannot open /dev/net/tun as you"
    return Support(True, bwrap=bwrap, slirp=slirp, setpriv=setpriv, version=version[0] if version else "?", slirp_why=slirp_why)


def _unshare() -> list[str]:
    """Every namespace but the network's (which ``argv`` decides). A root caller gets no user namespace: its bwrap keeps
    root to mount, and the command inside drops to nobody (in a user namespace, nobody would not be mapped)."""
    user = [] if os.geteuid() == 0 else ["--unshare-user"]
    return [*user, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]


def network_mode(network: bool, support: Support) -> str:
    """none: a loopback of its own; slirp: the internet, not the host's loopback; host: the host's network, loopback included."""
    if not network:
        return "none"
    return "slirp" if support.slirp else "host"


@dataclass(frozen=True)
class Layout:
    """A session's directories on the host. ``work``, ``state`` (the shell's saved variables and directory) and ``tmp``
    are the jail's to write; ``control`` is mamabear's alone (the session's settings, the port relay and its sockets):
    the jail sees only the relay and the sockets, read-only, so nothing it does changes what mamabear reads or writes."""

    work: Path
    state: Path
    tmp: Path
    control: Path

    @classmethod
    def of(cls, work: Path) -> Layout:
        base = work.parent
        return cls(work, base / "state", base / "tmp", base / "control")


def relay_line(host_ports: tuple[int, ...]) -> str:
    """The shell line that opens the host ports inside a jail (the relay returns once they listen)."""
    named = " ".join(map(str, host_ports))
    return f"python3 {CONTROL}/relay.py {CONTROL}/ports {named} || echo '[the host ports ({named}) could not be opened]' >&2"


def jail_user() -> int | None:
    """The user a root caller's commands run as (None: the caller's own)."""
    return NOBODY if os.geteuid() == 0 else None


def own(paths: list[Path]) -> None:
    """Give a root caller's session files to the user its commands run as, so they can change them."""
    if os.geteuid() != 0:
        return
    for path in paths:
        try:
            os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
        except FileNotFoundError:
            pass


def own_tree(root: Path) -> None:
    """As ``own``, for a whole directory of a session made before it was jailed (checked by its root's owner, once)."""
    if os.geteuid() != 0 or root.stat().st_uid == NOBODY:
        return
    for top, dirs, names in os.walk(root):
        own([Path(top)] + [Path(top) / n for n in dirs + names])


def options(
    layout: Layout,
    network: str,
    support: Support,
    fds: tuple[int, int] | None = None,
    relay: bool = False,
    binds: tuple[Path, ...] = (),
    ports: str = "ports",
    filter_fd: int | None = None,
) -> list[str]:
    """bwrap's options that jail a command. ``network``: a ``network_mode``; ``fds`` (info, block): bwrap tells the
    jailed process's pid on the first and waits to start it until the second is written (slirp); ``relay``: the
    port relay and its sockets are shown, read-only; ``binds``: folders of the workspace shown at their own path
    too (a browser's profile, which its driver outside names by that path); ``ports``: the folder of the control
    folder whose sockets the relay uses (a browser's jail lives beside the session's commands: each has its own);
    ``filter_fd``: where bwrap reads the seccomp filter (``seccomp.program``)."""
    args: list[str] = []
    for path in SYSTEM_RO:
        args += ["--ro-bind-try", path, path]
    for path in MERGED:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "0755", "--dir", "/var", "--symlink", "../tmp", "/var/tmp"]
    args += ["--perms", "0755", "--dir", "/run"]
    if _at_least(support.version, (0, 5)):  # --size
        args += ["--perms", "1777", "--size", str(SHM_MIB << 20), "--tmpfs", "/dev/shm"]
    args += ["--bind", str(layout.tmp), "/tmp", "--bind", str(layout.work), WORK, "--bind", str(layout.state), STATE]
    for shown in binds:
        for folder in reversed(shown.parents[:-1]):  # the folders leading to it, which the jail's user can pass
            if str(folder) not in ("/tmp", "/run", "/var", "/var/tmp", *SYSTEM_RO, *MERGED):
                args += ["--perms", "0755", "--dir", str(folder)]
        args += ["--bind", str(shown), str(shown)]
    if relay:
        args += ["--perms", "0755", "--dir", CONTROL]
        args += ["--ro-bind", str(Path(relay_module.__file__)), f"{CONTROL}/relay.py", "--ro-bind", str(layout.control / ports), f"{CONTROL}/ports"]
    args += ["--remount-ro", "/dev", "--remount-ro", "/"]  # what is left of bwrap's own tmpfs (/, /run, /dev) cannot fill RAM
    if filter_fd is not None:
        args += ["--seccomp", str(filter_fd)]
    args += ["--chdir", WORK, "--hostname", "sandbox", *_unshare(), "--die-with-parent", "--new-session"]
    if network != "host":
        args.append("--unshare-net")
    if fds is not None:
        args += ["--info-fd", str(fds[0]), "--block-fd", str(fds[1])]
    if os.geteuid() != 0:  # in its user namespace: no capability, and no user namespace of its own inside
        args += ["--cap-drop", "ALL", *(["--disable-userns"] if _at_least(support.version, (0, 8)) else [])]
    return args


def dropped(support: Support) -> list[str]:
    """What runs a root caller's command as nobody, with no capability and no way back (bwrap keeps root to mount)."""
    if os.geteuid() != 0:
        return []
    assert support.setpriv is not None
    return [support.setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def _at_least(version: str, wanted: tuple[int, ...]) -> bool:
    try:
        return tuple(int(part) for part in version.split(".")[:2]) >= wanted
    except ValueError:
        return False


class Launched:
    """A jailed command in flight: its process, and what ends with it (its network, its host ports, its line in the
    session's record of what runs, which ``sandbox stop`` kills)."""

    def __init__(self, proc: subprocess.Popen, network: Network | None, forwarding: HostPorts | None, notes: list[str], control: Path) -> None:
        self.proc, self.network, self.forwarding, self.notes, self.control = proc, network, forwarding, notes, control

    def close(self) -> list[str]:
        """End what the command needed; what went wrong on the way, for its output."""
        inflight.discard(self.control, self.proc.pid)
        if self.network is not None:
            self.network.close()
            if self.network.error:
                self.notes.append(f"the sandbox's network could not be set up: {self.network.error}; the command ran without it")
        if self.forwarding is not None:
            self.forwarding.close()
        return self.notes


def launch(
    layout: Layout,
    command: list[str],
    mode: str,
    support: Support,
    env: dict[str, str],
    host_ports: tuple[int, ...],
    keep_fds: tuple[int, ...] = (),
    capture: bool = True,
    binds: tuple[Path, ...] = (),
    ports: str = "ports",
) -> Launched:
    """Start ``command`` in the session's jail, its output on one pipe (``capture``; else this process's). ``keep_fds``:
    this process's descriptors it inherits (a browser's pipe to its driver). OSError when it cannot start; nothing is
    left open."""
    assert support.bwrap is not None
    for folder in (layout.work, layout.state, layout.tmp):
        own_tree(folder)  # a session made before it was jailed, once
    forwarding, notes = None, []
    if host_ports:
        layout.control.mkdir(exist_ok=True)
        try:
            forwarding = HostPorts(layout.control / ports, host_ports, jail_user())
        except OSError as exc:
            notes.append(f"the host ports could not be opened here: {exc.strerror or exc}")
    theirs: list[int] = []  # the child's ends, closed here once it has them
    ours: list[int] = []
    try:
        fds = None
        if mode == "slirp":
            info_r, info_w = os.pipe()
            block_r, block_w = os.pipe()
            ours += [info_r, block_w]
            theirs += [info_w, block_r]
            fds = (info_w, block_r)
        program = seccomp.program()
        filter_fd = _readable(program, theirs) if program else None
        jailing = options(layout, mode, support, fds, relay=forwarding is not None, binds=binds, ports=ports, filter_fd=filter_fd)
        # Through --args, so the jail's /proc/1/cmdline shows no path of this machine (MAMABEAR_HOME, the session).
        args_r = _readable(b"".join(arg.encode() + b"\0" for arg in jailing), theirs)
        proc = subprocess.Popen(
            [support.bwrap, "--args", str(args_r), "--", *dropped(support), *command],
            cwd="/",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture else None,
            start_new_session=True,
            pass_fds=(*theirs, *keep_fds),
        )
    except BaseException:
        for fd in ours:
            os.close(fd)
        if forwarding is not None:
            forwarding.close()
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    layout.control.mkdir(exist_ok=True)
    inflight.add(layout.control, proc.pid)  # killed at once if the session was stopped meanwhile
    network = _link(support.slirp, ours[0], ours[1]) if fds and support.slirp else None
    return Launched(proc, network, forwarding, notes, layout.control)


def _readable(data: bytes, theirs: list[int]) -> int:
    """A pipe's reading end holding ``data`` (small: within the pipe's buffer), added to ``theirs``."""
    read, write = os.pipe()
    theirs.append(read)
    with os.fdopen(write, "wb") as pipe:
        pipe.write(data)
    return read


def _link(slirp: str, info_r: int, block_w: int) -> Network | None:
    """Connect a jail to the internet before its command starts (bwrap waits on the block pipe until then)."""
    try:
        pid = child_pid(info_r)
        network = Network(slirp, pid) if pid is not None else None
        os.write(block_w, b"1")
    except OSError:
        network = None  # bwrap ended before its command started: its own error is in the output
    finally:
        os.close(info_r)
        os.close(block_w)
    return network


class Network:
    """A networked jail's link to the internet: slirp4netns on the jail's network namespace, refusing the host's loopback."""

    def __init__(self, slirp: str, child_pid: int) -> None:
        _loopback_up(child_pid)
        ready_r, ready_w = os.pipe()
        # slirp4netns ends when this pipe closes: with the command, or with mamabear however it ends (a SIGKILL too).
        exit_r, self._exit_w = os.pipe()
        try:
            self.proc: subprocess.Popen | None = subprocess.Popen(
                [slirp, "--configure", "--mtu=65520", "--disable-host-loopback", "--ready-fd", str(ready_w), "--exit-fd", str(exit_r), str(child_pid), "tap0"],
                pass_fds=(ready_w, exit_r),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except OSError:
            os.close(self._exit_w)
            raise
        finally:
            os.close(ready_w)
            os.close(exit_r)
        self.error = ""
        ready = _read_within(ready_r, 1, SLIRP_READY_S)
        os.close(ready_r)
        if ready != b"1":
            self.error = self._stop() or "slirp4netns did not come up"

    def _stop(self) -> str:
        """Stop slirp4netns and wait for it: the last line it wrote (why it did not come up)."""
        proc = self._kill()
        if proc is None:
            return ""
        err = (proc.communicate()[1] or b"").decode("utf-8", "replace").strip()
        return err.splitlines()[-1] if err else ""

    def close(self) -> None:
        """Stop slirp4netns; reaped on a thread of its own (it takes ~30 ms to go, and the command's result need not wait)."""
        proc = self._kill()
        if proc is not None:
            threading.Thread(target=proc.communicate, name="mamabear-slirp-reap", daemon=True).start()

    def _kill(self) -> subprocess.Popen | None:
        if self._exit_w >= 0:
            os.close(self._exit_w)
            self._exit_w = -1
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
        return proc


def _loopback_up(pid: int, seconds: float = 0.5) -> None:
    """Wait until bwrap has brought up the jail's loopback: slirp4netns configuring its interface meanwhile makes
    bwrap's own netlink requests fail ("loopback: Failed RTM_NEWADDR"), seen in 2 of 60 commands."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if " lo\n" in Path(f"/proc/{pid}/net/if_inet6").read_text():
                return
        except OSError:
            return  # no IPv6 (or the process is gone): nothing to wait on
        time.sleep(0.0005)


def child_pid(info_fd: int) -> int | None:
    """The jailed process's pid, from bwrap's --info-fd (None if bwrap ended before it started one)."""
    raw = b""
    while True:
        chunk = _read_within(info_fd, 4096, SLIRP_READY_S)
        if not chunk:
            return None
        raw += chunk
        try:
            return int(json.loads(raw)["child-pid"])
        except (ValueError, KeyError):
            continue


def _read_within(fd: int, size: int, seconds: float) -> bytes:
    """os.read with a deadline: what a process that hangs never writes is not waited for."""
    result: list[bytes] = []

    def read() -> None:
        try:
            result.append(os.read(fd, size))
        except OSError:
            result.append(b"")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(seconds)
    return result[0] if result else b""
