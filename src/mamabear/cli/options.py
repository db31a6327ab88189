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


# Options a background process is not given again: how this process shows the run, and what it reads here only.
NOT_FORWARDED = frozenset({"detach", "json_out", "quiet", "run_id", "inputs", "inputs_file", "goal"})
PATHS = frozenset({"record", "replay", "answers_file"})  # read or written by the background process: absolute


def background_args(ctx: typer.Context, given: dict[str, str] | None = None, **chosen: object) -> list[str]:
    """This command's arguments again, for the same command in a background process, rebuilt from what click parsed
    (so a new option is forwarded without being listed here): its arguments, then each option that differs from its
    default; ``given``: the inputs, as -i pairs (--inputs - read stdin, which the background process does not have);
    ``chosen``: values decided here, by parameter name (the crew a project's folder runs)."""
    from pathlib import Path

    args: list[str] = [ctx.info_name or ""]
    for param in ctx.command.params:
        name = param.name or ""
        value = chosen.get(name, ctx.params.get(name))
        if name in NOT_FORWARDED or value is None or value == param.default or value in ((), []):
            continue
        if param.param_type_name == "argument":
            args.append(str(value))
            continue
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            args.append(flag if value else (param.secondary_opts or [flag])[0])
        else:
            for item in value if isinstance(value, (list, tuple)) else [value]:
                args += [flag, str(Path(str(item)).expanduser().resolve()) if name in PATHS else str(item)]
    for key, value in (given or {}).items():
        args += ["-i", f"{key}={value}"]
    return args
