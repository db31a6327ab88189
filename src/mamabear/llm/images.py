"""Screenshots to the model: a tool's answer names an image file, and the request carries the image itself.

CrewAI hands a tool's answer to the model as the text of a ``tool`` message, which cannot hold an image. A tool that
took a screenshot answers with text that ends in an image marker (``image_marker(path)``). Just before each model
request, ``with_images`` turns the markers of the latest ``keep`` screenshots into image parts of a user message after
the tool messages (OpenAI's ``image_url`` with a data URI; CrewAI's Anthropic and Gemini classes convert it), and
the older ones into a line saying where they are. The run's own history, its checkpoints and memory hold only the
marker: the path, never the image.
"""

from __future__ import annotations

import base64
import re
from functools import partial
from pathlib import Path
from typing import Any

MARKER = re.compile(r"\[mamabear-image: ([^\]\n]+)\]")
KEEP = 3  # screenshots shown to the model in one request: the latest ones (each costs about a thousand tokens)


def image_marker(path: Path | str) -> str:
    return f"[mamabear-image: {path}]"


def with_images(messages: Any, keep: int = KEEP, blind: bool = False, root: Path | None = None) -> Any:
    """``messages`` with their image markers made into images (the latest ``keep``) or notes; the same object when
    none has a marker. ``blind``: the model takes no images, so each marker becomes a note of where the image is.
    Only a tool's answer can carry an image, and only of a file under ``root`` (the sandboxes' screenshots): a marker
    that a web page or an input holds is text, never a file read from this machine."""
    if root is None or not isinstance(messages, list):
        return messages
    root = root.resolve()
    found = [_screenshots(message, root) for message in messages]  # each message's screenshots, looked at once
    if not any(found):
        return messages
    paths = [path for shots in found for path in shots]
    shown = set(paths[-keep:]) if keep > 0 and not blind else set()
    out: list[Any] = []
    pending: list[str] = []  # images of the tool messages just passed, shown once they end
    for message, shots in zip(messages, found, strict=True):
        if pending and not (isinstance(message, dict) and message.get("role") == "tool"):
            out.append(_image_message(pending))
            pending = []
        if not shots:
            out.append(message)
            continue
        pending += [path for path in shots if path in shown and Path(path).is_file()]
        note = MARKER.sub(partial(_noted, shots=shots, shown=shown, blind=blind), message["content"])
        out.append({**message, "content": note})
    if pending:
        out.append(_image_message(pending))
    return out


def _noted(marker: re.Match[str], shots: list[str], shown: set[str], blind: bool) -> str:
    """A marker of a screenshot the tool took, as the note the model reads; any other marker is left as it is."""
    return _note(marker.group(1), shown, blind) if marker.group(1) in shots else marker.group(0)


def _note(path: str, shown: set[str], blind: bool) -> str:
    if blind:
        return f"(the image is saved at {path}; this model is not shown images)"
    if path in shown and Path(path).is_file():
        return "(the image follows)"
    return f"(an earlier image, not shown again: {path})"


def _screenshots(message: Any, root: Path) -> list[str]:
    """The screenshots a tool's answer names, of those under ``root`` (none for any other message)."""
    if not (isinstance(message, dict) and message.get("role") == "tool" and isinstance(message.get("content"), str)):
        return []
    return [path for path in MARKER.findall(message["content"]) if _inside(path, root)]


def _inside(path: str, root: Path) -> bool:
    try:
        resolved = Path(path).resolve()
    except (OSError, ValueError):
        return False
    return resolved.is_relative_to(root) and resolved.parent.name == "screenshots" and resolved.suffix.lower() in (".png", ".jpg", ".jpeg")


def unmarked(messages: Any) -> Any:
    """``messages`` with each image marker reduced to the word: what a recording keys and keeps (a path changes from
    one run to the next, and an image is never written to the recording)."""
    if not isinstance(messages, list):
        return messages
    return [
        {**m, "content": MARKER.sub("[mamabear-image]", m["content"])} if isinstance(m, dict) and isinstance(m.get("content"), str) else m for m in messages
    ]


def _image_message(paths: list[str]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": "The screenshot" + ("s" if len(paths) > 1 else "") + " the tool took:"}]
    for path in paths:
        data = base64.b64encode(Path(path).read_bytes()).decode()
        parts.append({"type": "image_url", "image_url": {"url": f"data:{_media_type(path)};base64,{data}"}})
    return {"role": "user", "content": parts}


def _media_type(path: str) -> str:
    return "image/jpeg" if path.lower().endswith((".jpg", ".jpeg")) else "image/png"
