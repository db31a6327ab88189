"""The local sandbox's browser: Debian's Chromium in the session's jail, driven by Playwright, against pages served
on 127.0.0.1 (reached through the kind's host port, as the jail's network rule allows) and the scripted model."""

from __future__ import annotations

import http.server
import shutil
import threading

import pytest

from mamabear.engine.services import Services

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed (make install installs Debian's chromium)")

PAGES = {
    "/": "<html><head><title>Otter facts</title></head><body><h1>Otters</h1><p>Otters hold hands.</p><a href='/more'>More about otters</a>"
    "<a href='/notes.txt' download>Get the notes</a></body></html>",
    "/notes.txt": "otters: 13 species\n",
    "/more": "<html><head><title>Sea otters at rest</title></head><body><p>They sleep floating.</p>"
    "<form action='/found'><input name='q' placeholder='Search'></form></body></html>",
    "/found": "<html><head><title>Found</title></head><body>results</body></html>",
}
TASK = "Find out what the second page is called"


class Pages(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = PAGES.get(self.path.split("?")[0], "<title>Missing</title>").encode()
        self.send_response(200 if self.path.split("?")[0] in PAGES else 404)
        self.send_header("Content-Type", "text/plain" if self.path.endswith(".txt") else "text/html")
        self.send_header("Set-Cookie", "visited=yes; Max-Age=3600; Path=/")
        self.end_headers()
        self.wfile.write(body)
        self.server.seen.append(self.path)  # type: ignore[attr-defined]

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def site():  # noqa: ANN201
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def project(site, isolated, tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    port = site.server_address[1]
    root = tmp_path / "project"
    (root / "config").mkdir(parents=True)
    (root / "crews").mkdir()
    (root / "config" / "agents.yaml").write_text("surfer:\n  role: Surfer\n  goal: Read the web\n  backstory: Curious.\n  tier: fast\n  tools: [browser]\n")
    (root / "config" / "tasks.yaml").write_text(f"look:\n  description: {TASK}, starting at the otter page.\n  expected_output: Its title.\n  agent: surfer\n")
    (root / "config" / "sandbox.yaml").write_text(f"kinds:\n  browsing:\n    setup: []\n    host_ports: [{port}]\n")
    (root / "crews" / "surf.yaml").write_text("description: surf\nagents: [surfer]\ntasks: [look]\nsandbox: {kind: browsing, backend: local}\n")
    monkeypatch.chdir(root)
    return root


def tool(name: str, **arguments: object) -> list[dict]:
    return [{"name": name, "arguments": arguments}]


def answers(fake) -> list[str]:  # noqa: ANN001
    """What the tools answered, in order: the tool messages of the task's longest conversation (its last request)."""
    asked = [r for r in fake.chat_requests if TASK in r["text"]]
    last = max(asked, key=lambda r: len(r["body"]["messages"]))
    return [m["content"] for m in last["body"]["messages"] if m.get("role") == "tool"]


def test_an_agent_opens_a_local_page_reads_it_clicks_a_link_and_reports_the_second_pages_title(cli, fake, site, isolated, project):
    url = f"http://127.0.0.1:{site.server_address[1]}/"
    fake.add(task=TASK, times=1, tool_calls=tool("browser_open", url=url))
    fake.add(task=TASK, times=1, tool_calls=tool("browser_click", text="Get the notes"))
    fake.add(task=TASK, times=1, tool_calls=tool("browser_click", text="More about otters"))
    fake.add(task=TASK, times=1, tool_calls=tool("browser_read"))
    fake.add(task=TASK, times=1, tool_calls=tool("browser_type", text="Search", value="otters", submit=True))
    fake.add(task=TASK, times=1, tool_calls=tool("browser_screenshot"))
    fake.add(task=TASK, times=1, text="The second page is called Sea otters at rest.")
    result = cli("run", "surf", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    opened, downloaded, clicked, read, typed, shot = answers(fake)
    assert "# Otter facts" in opened and "Otters hold hands." in opened and "[More about otters](" in opened
    assert "downloaded notes.txt to downloads/notes.txt in the workspace" in downloaded
    assert "the page is now 'Sea otters at rest'" in clicked
    assert read.startswith("# Sea otters at rest\nURL: " + url + "more")
    assert "submitted; the page is now 'Found'" in typed and "(the image follows)" in shot
    last = [r for r in fake.chat_requests if TASK in r["text"]][-1]
    images = [p for m in last["body"]["messages"] if isinstance(m.get("content"), list) for p in m["content"] if p.get("type") == "image_url"]
    assert len(images) == 1 and images[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert [p for p in site.seen if p != "/favicon.ico"] == ["/", "/notes.txt", "/more", "/found?q=otters"]  # a real browser, through the relay
    assert result.json()["output"] == "The second page is called Sea otters at rest."
    run_id = result.json()["run_id"]
    audit = [(a["action"], a["target"]) for a in Services().sessions().ledger.actions(run_id=run_id) if a["action"] == "browser"]
    assert audit == [
        ("browser", url),
        ("browser", "Get the notes"),
        ("browser", "More about otters"),
        ("browser", "page"),
        ("browser", "Search"),
        ("browser", "screenshot"),
    ]
    work = Services().sessions().get(result.json()["session_id"])["workdir"]
    from pathlib import Path

    assert (Path(work) / ".browser").is_dir()  # its profile (cookies) is in the workspace
    assert (Path(work) / "downloads" / "notes.txt").read_text() == "otters: 13 species\n"  # and what it downloaded


def test_the_browser_follows_the_sessions_network_rule(cli, fake, site, isolated, project):
    """Without the kind's host port, the jail cannot reach this machine's loopback: the page does not open."""
    (project / "config" / "sandbox.yaml").write_text("kinds:\n  browsing:\n    setup: []\n")
    fake.add(task=TASK, times=1, tool_calls=tool("browser_open", url=f"http://127.0.0.1:{site.server_address[1]}/"))
    fake.add(task=TASK, times=1, text="It did not open.")
    result = cli("run", "surf", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    assert "the browser could not do it" in answers(fake)[0] and site.seen == []
