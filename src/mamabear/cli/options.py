"""Option declarations shared by several commands."""

import typer

JSON = typer.Option(False, "--json", help="Print one JSON document on stdout and nothing else there.")
