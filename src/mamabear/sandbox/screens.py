"""Screenshots kept for the model and the audit: scaled to the configured width, with a thumbnail beside each.

The model sees the scaled image, so the coordinates it gives are in the scaled picture; ``Shot.scale`` turns them
back into the screen's own (``to_screen``). Each shot lives under the session's folder in ``$MAMABEAR_HOME``, never in
a checkpoint or memory: those keep its path.
"""

from __future__ import annotations

import io
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

THUMB_WIDTH = 240


@dataclass(frozen=True)
class Shot:
    path: Path
    thumbnail: Path
    size: tuple[int, int]  # as the model sees it
    screen: tuple[int, int]  # the screen's own
    bytes: int  # of the file the model is sent

    @property
    def scale(self) -> float:
        return self.screen[0] / self.size[0] if self.size[0] else 1.0

    def to_screen(self, x: int, y: int) -> tuple[int, int]:
        return round(x * self.scale), round(y * self.scale)

    def describe(self) -> str:
        scaled = f", scaled from {self.screen[0]}x{self.screen[1]}" if self.screen != self.size else ""
        return f"a {self.size[0]}x{self.size[1]} screenshot{scaled}; give coordinates in it"


def keep(folder: Path, image: bytes, width: int) -> Shot:
    """The image saved (scaled down to ``width`` if wider) as PNG, and its thumbnail."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"  # several processes may shoot one session at once
    with Image.open(io.BytesIO(image)) as picture:
        picture.load()
        screen = picture.size
        shown = picture
        if picture.width > width:  # scaled down, then to 128 colours: scaling blends text into many shades PNG keeps badly
            size = (width, max(1, round(picture.height * width / picture.width)))
            shown = picture.convert("RGB").resize(size, Image.Resampling.LANCZOS).quantize(colors=128, method=Image.Quantize.FASTOCTREE)
        path = folder / f"{stem}.png"
        shown.save(path, "PNG", optimize=True)
        thumb = shown.convert("RGB")
        thumb.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 4))
        thumbnail = folder / f"{stem}.thumb.png"
        thumb.save(thumbnail, "PNG")
        return Shot(path, thumbnail, shown.size, screen, path.stat().st_size)
