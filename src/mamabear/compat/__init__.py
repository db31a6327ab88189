"""Every use of a library's internals, in one place: CrewAI, httpx, Chroma, Scrapybara, litellm, Typer, the stdlib.

Nothing here takes effect by being imported: the run engine calls ``crewai.apply_checkpoint_patches()``
before it builds a crew, and every other helper is called where it is needed. ``problems()``
checks that each internal is still where mamabear expects it and names the library and its
version when one has moved; ``tests/test_compat.py`` runs it, so an upgrade that breaks one
fails loudly in CI instead of quietly at run time. The libraries are pinned or bounded in
``pyproject.toml`` to the versions these helpers were written against.
"""
