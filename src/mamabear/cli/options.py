"""Option declarations shared by several commands."""

import typer

JSON = typer.Option(False, "--json", help="Print one JSON document on stdout and nothing else there.")


_state: dict = {"debug": False, "started_at": None}


def set_started(ts: float) -> None:
    """When this command started: a run's time is counted from here (imports and set-up included), everywhere."""
    _state["started_at"] = ts


def process_started() -> float:
    """When this process started (Linux: from /proc, to ~10 ms), so interpreter start-up and imports count; else now."""
    import os
    import time

    try:
        with open("/proc/self/stat", encoding="ascii") as stat, open("/proc/uptime", encoding="ascii") as uptime:
            ticks = int(stat.read().rpartition(")")[2].split()[19])  # field 22, starttime: clock ticks after boot
            age = float(uptime.read().split()[0]) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - max(0.0, age)
    except (OSError, ValueError, IndexError):
        return time.time()


def command_started() -> float | None:
    return _state["started_at"]


def set_debug(value: bool) -> None:
    _state["debug"] = value


def debug_enabled() -> bool:
    """True when the root --debug flag was given."""
    return _state["debug"]


# Options whose value may be left out (`--queue` alone means `--queue default`): Typer cannot declare them, so the
# arguments are completed before parsing. A value is taken when the next argument is not an option.
OPTIONAL_VALUES = {"--queue": "default"}


def with_optional_values(args: list[str]) -> list[str]:
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--":
            return out + args[i + 1 :]
        if arg in OPTIONAL_VALUES and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append(OPTIONAL_VALUES[arg])
    return out
