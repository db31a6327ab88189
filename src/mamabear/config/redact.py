"""Keep secrets and personal data out of everything mamabear writes: traces, logs, progress, the run store and memory.

Always masked: the values of environment variables whose names look secret (KEY, TOKEN,
SECRET, PASSWORD, CREDENTIAL), and those values re-encoded (base64, hex, URL-encoded, reversed). ``config/privacy.yaml`` adds more variables and regular
expressions for personal data (e-mail addresses, phone numbers, customer ids).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mamabear.errors import ConfigError, UsageError

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
MASK = "[REDACTED]"
FRAGMENT = 6  # a secret's start or end this long, cut off by a word's edge (a truncated text), is masked too


class Redactor:
    """Replaces secret values and sensitive patterns wherever they appear."""

    def __init__(self, env: Mapping[str, str], min_length: int = 8, names: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        extra = set(names)
        self._names = {v: k for k, v in sorted(env.items()) if (_SECRET_NAME.search(k) or k in extra) and v and len(v) >= min_length}
        # A secret an agent re-encoded (`printf %s "$KEY" | base64`, `| xxd -p`, `| rev`, a URL) is the secret still.
        forms = {form for secret in self._names for form in encoded(secret)} - set(self._names)
        parts = [re.escape(v) for v in sorted({*self._names, *forms}, key=len, reverse=True)] + [f"(?:{p})" for p in patterns]
        self._pattern = re.compile("|".join(parts)) if parts else None

    @classmethod
    def for_settings(cls, settings: object) -> Redactor:
        """The redactor for a workspace: its environment plus its config/privacy.yaml."""
        names, patterns = sensitive(getattr(settings, "project_dir", None))
        return cls(getattr(settings, "env", {}), names=names, patterns=patterns)

    def __call__(self, text: str | None) -> str | None:
        if text is None or self._pattern is None:
            return text
        return self._fragments_masked(self._pattern.sub(MASK, text))

    def holds_secret(self, text: str) -> bool:
        return self._pattern is not None and self(text) != text

    def _fragments_masked(self, text: str) -> str:
        """Mask what is left of a secret that a cut (a model's answer at its token limit, a shortened line) split:
        its first or last FRAGMENT+ characters, ending (or starting) where a word does."""
        for secret in self._names:
            for head in (True, False):
                probe = secret[:FRAGMENT] if head else secret[-FRAGMENT:]
                at = text.find(probe)
                while at != -1:
                    start, end = at, at + FRAGMENT
                    if head:
                        while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
                            end += 1
                    else:
                        while start > 0 and end - start < len(secret) and text[start - 1] == secret[len(secret) - (end - start) - 1]:
                            start -= 1
                    cut = (end == len(text) or not text[end].isalnum()) if head else (start == 0 or not text[start - 1].isalnum())
                    if cut:
                        text = text[:start] + MASK + text[end:]
                        end = start + len(MASK)
                    at = text.find(probe, end)
        return text

    def data(self, value: Any) -> Any:
        """A JSON-shaped value (an event's data) with every string in it redacted."""
        return json.loads(self(json.dumps(value, default=str, ensure_ascii=False)) or "null")

    def referenced_data(self, value: Any) -> Any:
        """A JSON-shaped value (a run's inputs, its plan) with ``referenced`` applied to every string in it."""
        return json.loads(self.referenced(json.dumps(value, default=str, ensure_ascii=False)))

    def referenced(self, text: str) -> str:
        """The text with each secret variable's value as ``${NAME}`` (and other sensitive data masked): what a run's inputs are
        stored as, so a resume can put the value back from the environment and nothing at rest holds it."""
        if self._pattern is None:
            return text
        text = self._pattern.sub(lambda m: f"${{{self._names[m.group(0)]}}}" if m.group(0) in self._names else MASK, text)
        return self._fragments_masked(text)


def encoded(secret: str) -> set[str]:
    """The forms a secret takes when a command or a model re-encodes it: base64 (standard and URL-safe, with and
    without its padding), hex (either case), URL-encoded, reversed. Forms shorter than 8 characters are left out."""
    raw = secret.encode()
    b64, safe = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    forms = {b64, b64.rstrip("="), safe, safe.rstrip("="), raw.hex(), raw.hex().upper(), quote(secret, safe=""), secret[::-1]}
    return {form for form in forms if len(form) >= 8}


_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def dereferenced(text: str, env: Mapping[str, str], what: str | None, in_json: bool = False) -> str:
    """Put back the values ``Redactor.referenced`` took out. ``what`` names the text for the error when a variable is
    no longer set (a usage error); with ``what=None`` such a reference is left as it is (a replay without the secret).
    ``in_json``: the text is JSON (a checkpoint, a recorded answer), so each value goes in JSON-escaped."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if not _SECRET_NAME.search(name):
            return match.group(0)  # not one of ours: text the user wrote
        if not env.get(name):
            if what is None:
                return match.group(0)
            raise UsageError(f"{what} used the value of {name}, which is not set now; set it again to go on.")
        return json.dumps(env[name])[1:-1] if in_json else env[name]

    return _REFERENCE.sub(value, text)


@lru_cache(maxsize=8)
def sensitive(project_dir: Path | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(variable names, regexes) from every config/privacy.yaml, packaged first; errors name file and line."""
    from mamabear.config import yamlfile
    from mamabear.config.catalog import search_roots
    from mamabear.config.yamlfile import YamlMapping

    names: list[str] = []
    patterns: list[str] = []
    for doc, path in yamlfile.layers(search_roots(project_dir), "privacy.yaml"):
        if doc is None:
            continue
        section = doc.get("sensitive") if isinstance(doc, YamlMapping) else None
        if not isinstance(section, YamlMapping):
            raise ConfigError(f"{path}:1: privacy.yaml needs a 'sensitive' mapping with 'env' and 'patterns' lists.")
        for key in section:
            if key not in ("env", "patterns"):
                raise ConfigError(f"{section.where(key)}: unknown setting '{key}'; use env or patterns.")
        for key, into in (("env", names), ("patterns", patterns)):
            items = section.get(key) or []
            if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
                raise ConfigError(f"{section.where(key)}: '{key}' must be a list of strings.")
            into.extend(items)
        for pattern in section.get("patterns") or []:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{section.where('patterns')}: pattern '{pattern}' is not a valid regular expression ({exc}).") from None
    return tuple(names), tuple(patterns)


def shown_url(url: str) -> str:
    """The URL for messages: the password (in the userinfo or a ?password= parameter) becomes ***. Plain string
    work, not urlsplit: a password with an unescaped '#', '?' or '@' must not leak through a misparse."""
    head, sep, rest = url.partition("://")
    if not sep:
        head, rest = "", url
    if "@" in rest and not rest.startswith("/"):
        userinfo, tail = rest.rsplit("@", 1)
        if ":" in userinfo:
            rest = f"{userinfo.split(':', 1)[0]}:***@{tail}"
    rest = re.sub(r"([?&]password=)[^&#]*", r"\1***", rest, flags=re.IGNORECASE)
    return head + sep + rest
