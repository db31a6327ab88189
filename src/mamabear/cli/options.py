"""Option declarations shared by several commands."""

import typer

JSON = typer.Option(False, "--json", help="Print one JSON document on stdout and nothing else there.")


_state = {"debug": False}


def set_debug(value: bool) -> None:
    _state["debug"] = value


def debug_enabled() -> bool:
    """True when the root --debug flag was given."""
    return _state["debug"]
