"""Scripted web APIs on 127.0.0.1 for the crewai-tools classes: Serper's and Brave's search APIs as each documents
them, and plain web pages for the page reader. Every request is kept for the tests to read."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlparse

from loopback import JsonHandler, LoopbackServer

PAGES = {
    "/otters.html": "<html><head><title>Sea otters</title></head><body><h1>Sea otters</h1>"
    "<p>Sea otters hold hands while they sleep so that they do not drift apart.</p><a href='/rafts.html'>Rafts</a></body></html>",
    "/rafts.html": "<html><head><title>Otter rafts</title></head><body><p>A group of resting otters is a raft.</p></body></html>",
}


class SearchAPIs(LoopbackServer):
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        super().__init__(_handler_for(self))

    def results(self, query: str) -> list[dict[str, str]]:
        return [{"title": "Sea otters", "link": f"{self.origin}/otters.html", "snippet": f"What is known about {query}: they hold hands."}]


def _handler_for(server: SearchAPIs) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def do_POST(self) -> None:  # Serper: POST /search with X-API-KEY and {"q": ...}
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            server.requests.append({"api": "serper", "path": self.path, "key": self.headers.get("X-API-KEY"), "body": body})
            if self.headers.get("X-API-KEY") != "serper-test-key":
                self._send_json(403, {"message": "Unauthorized."})
                return
            organic = [{**r, "position": n} for n, r in enumerate(server.results(body.get("q", "")), start=1)]
            self._send_json(200, {"searchParameters": {"q": body.get("q")}, "organic": organic, "credits": 1})

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/res/v1/web/search":  # Brave: GET with X-Subscription-Token and ?q=
                query = parse_qs(url.query).get("q", [""])[0]
                server.requests.append({"api": "brave", "path": url.path, "key": self.headers.get("X-Subscription-Token"), "query": query})
                hits = [{"title": r["title"], "url": r["link"], "description": r["snippet"]} for r in server.results(query)]
                self._send_json(200, {"type": "search", "web": {"type": "search", "results": hits}})
                return
            server.requests.append({"api": "page", "path": url.path, "agent": self.headers.get("User-Agent")})
            page = PAGES.get(url.path)
            data = (page or "<html><body>not found</body></html>").encode()
            self.send_response(200 if page else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
