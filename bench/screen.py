"""Screens and browsers: what a screenshot costs the run and the model request, each beside its baseline.

1. Screenshot round trip, each against a plain command on the same backend (the baseline):
   - local: browser_screenshot of a page in the jailed Chromium, against `true` in the jail;
   - Scrapybara (the scripted server in tests/fakescrapybara.py, a 1280x800 screen): computer_use's screenshot
     (the SDK call, the cursor read, scaling and the thumbnail), against `true` in the instance's shell.
2. Page open + read in the local browser, against fetching the same page from this machine (httpx).
3. Bytes a screenshot adds to a model request at the default width (1024), against the screen's own PNG.

Usage: python bench/screen.py [N]   (default 20 of each; Chromium must be installed)
"""

from __future__ import annotations

import base64
import http.server
import io
import statistics
import sys
import threading
import time
from pathlib import Path

from offline import REPO  # noqa: F401 - a throwaway MAMABEAR_HOME, the privacy defaults

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20
PAGE = b"<html><head><title>Bench</title></head><body>" + b"<p>Otters hold hands while they sleep.</p>" * 200 + b"<a href='/'>again</a></body></html>"


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *_: object) -> None:
        pass


def row(what: str, samples: list[float], baseline: str, base: list[float]) -> None:
    ratio = statistics.median(samples) / statistics.median(base)
    print(f"{what:32} {ms(samples)}   | baseline {baseline:24} {ms(base)}   ratio {ratio:.1f}x")


def ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:7.1f} ms, p90 {sorted(samples)[int(len(samples) * 0.9) - 1] * 1000:7.1f} ms"


def timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def screen_png(width: int = 1280, height: int = 800) -> bytes:
    """A screen as a browser shows a page: a title bar, a sidebar and lines of text on white."""
    import random

    from PIL import Image, ImageDraw

    random.seed(7)
    picture = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    draw.rectangle([0, 0, width, 70], fill=(222, 225, 230))
    draw.rectangle([0, 70, 220, height], fill=(245, 246, 248))
    words = "otters hold hands while they sleep so they do not drift apart in the sea".split()
    for y in range(90, height - 20, 22):
        line = " ".join(random.choice(words) for _ in range(random.randint(6, 16)))
        draw.text((240, y), line, fill=(30, 30, 30))
        if y % 88 == 2:
            draw.text((20, y), random.choice(words).title(), fill=(40, 80, 160))
    out = io.BytesIO()
    picture.save(out, "PNG", optimize=True)
    return out.getvalue()


def local(url: str) -> None:
    from mamabear.engine.services import Services

    sessions = Services().sessions()
    session = sessions.start("local", "research")
    sessions.screen(session, "open", url, via="browse", url=url)  # the browser starts here, once
    commands = [timed(lambda: sessions.exec(session, "true")) for _ in range(N)]
    shots = [timed(lambda: sessions.screen(session, "screenshot", "screenshot", via="browse")) for _ in range(N)]
    opens = [timed(lambda: sessions.screen(session, "open", url, via="browse", url=url)) for _ in range(N)]
    import httpx

    fetches = [timed(lambda: httpx.get(url).text) for _ in range(N)]
    row("local screenshot round trip", shots, "`true` in the jail", commands)
    row("local page open + read", opens, "httpx GET here", fetches)


def cloud(png: bytes) -> None:
    import os

    from fakescrapybara import FakeScrapybara
    from mamabear.engine.services import Services

    with FakeScrapybara(api_key="sb-bench") as fake:
        fake.screen_b64 = base64.b64encode(png).decode()
        os.environ.update(SCRAPYBARA_API_KEY="sb-bench", SCRAPYBARA_BASE_URL=fake.url)
        sessions = Services().sessions()
        session = sessions.start("scrapybara", "research")
        commands = [timed(lambda: sessions.exec(session, "true")) for _ in range(N)]
        shots = [timed(lambda: sessions.screen(session, "take_screenshot", "screenshot")) for _ in range(N)]
        row("scripted screenshot round trip", shots, "`true` on the instance", commands)
        _, shot = sessions.screen(session, "take_screenshot", "screenshot")
        assert shot is not None
        added = len(base64.b64encode(shot.path.read_bytes())) + len('{"type":"image_url","image_url":{"url":"data:image/png;base64,"}}')
        full = len(base64.b64encode(png))
        at = f"{shot.size[0]}x{shot.size[1]}"
        print(f"bytes per screenshot in a request: {added:,} at {at} | baseline the screen's own PNG (base64) {full:,} at 1280x800, ratio {added / full:.2f}")


def main() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host_port = server.server_address[1]
    home = Path(__import__("os").environ["MAMABEAR_HOME"])
    (home / "config").mkdir(parents=True, exist_ok=True)
    print(f"{N} of each; this machine's figures, each beside its baseline measured in the same run")
    import os

    os.environ["MAMABEAR_CONFIG_DIR"] = str(home)
    (home / "config" / "sandbox.yaml").write_text(f"kinds:\n  research:\n    setup: []\n    host_ports: [{host_port}]\n")
    local(f"http://127.0.0.1:{host_port}/")
    cloud(screen_png())
    server.shutdown()


if __name__ == "__main__":
    main()
