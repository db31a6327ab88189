"""A real browser for a local session: headless Chromium (Debian's package) in the session's jail, driven by Playwright.

One browser per session and process, started at its first use and kept while the process lives, so a page stays
open from one tool call to the next. Playwright's sync API cannot run under the asyncio loop CrewAI may be running,
so the browser lives on a thread of its own and each action is handed to it. Its profile (cookies, storage) and
its downloads are in the workspace (``.browser/``); the jail applies the session's network rule to it.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mamabear.sandbox.backend import SandboxError

CHROMIUM = ("chromium", "chromium-browser")
START_S = 60.0
ACTION_S = 45.0
CLICK_SETTLE_MS = 300
IDLE_S = 0.2  # how often an idle browser lets Playwright's loop run (downloads, events)
PAGE_CHARS = 12_000  # of a page's text handed to the model
LINKS = 60

READ_JS = """() => {
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => [a.innerText.trim().replace(/\\s+/g, ' '), a.href])
    .filter(([t]) => t).slice(0, LINKS);
  return {text: document.body ? document.body.innerText : '', links};
}""".replace("LINKS", str(LINKS))


def chromium() -> str | None:
    return next((found for name in CHROMIUM if (found := shutil.which(name))), None)


class Browser:
    def __init__(self, control: Path, spec: dict[str, Any] | None, profile: Path, downloads: Path) -> None:
        """``spec``: how to jail it (chromium_jail.py), or None to run Chromium as it is (no jail on this machine);
        ``profile`` and ``downloads``: folders of the workspace, shown in the jail at their own path too."""
        found = chromium()
        if found is None:
            raise SandboxError("the local browser needs Chromium: install Debian's package (apt install chromium).")
        env: dict[str, str | float | bool] = {"HOME": str(profile.parent), "PATH": os.defpath}
        executable = Path(found)
        if spec is not None:
            control.mkdir(parents=True, exist_ok=True)
            (control / "browser.json").write_text(json.dumps({**spec, "chromium": found, "binds": [str(profile), str(downloads)]}))
            executable = control / "chromium-in-jail"
            executable.write_text(f'#!/bin/sh\nexec {sys.executable} -m mamabear.sandbox.chromium_jail "$@"\n')
            executable.chmod(0o700)
            env = {"MAMABEAR_BROWSER_SPEC": str(control / "browser.json"), "PATH": os.environ.get("PATH", os.defpath)}
            if "PYTHONPATH" in os.environ:
                env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.downloads = downloads
        self.notes: list[str] = []  # what happened besides the action (a download), told with its answer
        self._thread = threading.Thread(target=self._serve, args=(executable, env, profile), name="mamabear-browser", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_S) or self._error is not None:
            raise SandboxError(f"the local browser could not start: {self._error or f'no answer in {START_S:.0f}s'}.")

    def _serve(self, executable: Path, env: dict[str, str | float | bool], profile: Path) -> None:
        try:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as driver:
                args = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"]
                context = driver.chromium.launch_persistent_context(
                    str(profile), executable_path=str(executable), args=args, env=env, accept_downloads=True, downloads_path=str(self.downloads), headless=True
                )
                context.set_default_timeout(ACTION_S * 1000 * 0.6)
                context.on("page", lambda opened: opened.on("download", self._downloaded))
                page = context.pages[0] if context.pages else context.new_page()
                page.on("download", self._downloaded)
                self._ready.set()
                while True:
                    try:
                        job = self._jobs.get(timeout=IDLE_S)
                    except queue.Empty:
                        page.wait_for_timeout(10)  # Playwright's loop runs only inside its calls: a download goes on here
                        continue
                    if job is None:
                        break
                    action, box = job
                    try:
                        if page.is_closed():
                            page = context.pages[-1] if context.pages else context.new_page()
                        box.put((True, action(page)))
                        page = context.pages[-1] if context.pages else page  # a link that opened a tab: work there
                    except Exception as exc:  # noqa: BLE001 - told to the agent in a sentence
                        box.put((False, exc))
                context.close()
        except Exception as exc:  # noqa: BLE001 - said by the constructor, or by the next action
            self._error = exc
            self._ready.set()

    def _downloaded(self, download: Any) -> None:
        """A file the page sent: kept in the workspace's downloads/ under its own name."""
        name = Path(download.suggested_filename).name or "download"
        download.save_as(self.downloads / name)
        download.delete()  # the browser's own copy, named by a number
        self.notes.append(f"downloaded {name} to downloads/{name} in the workspace")

    def run(self, action: Callable[[Any], Any]) -> Any:
        """``action(page)`` on the browser's thread; its result, or a SandboxError saying what went wrong."""
        if not self.alive:
            raise SandboxError(f"the local browser has stopped ({self._error or 'it exited'}); the next action starts a new one.")
        box: queue.Queue[Any] = queue.Queue()
        self._jobs.put((action, box))
        try:
            ok, value = box.get(timeout=ACTION_S)
        except queue.Empty:
            raise SandboxError(f"the browser did not finish in {ACTION_S:.0f}s.") from None
        if not ok:
            raise _said(value)
        if self.notes and isinstance(value, str):
            value, self.notes = value + "\n" + "\n".join(self.notes), []
        return value

    @property
    def alive(self) -> bool:
        return self._error is None and self._thread.is_alive()

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(15)


def _said(exc: BaseException) -> SandboxError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return SandboxError(f"the browser could not do it: {first[:300]}")


def read(page: Any) -> str:
    """The page as text: its title and address, what it shows, and its links."""
    found = page.evaluate(READ_JS)
    text = "\n".join(line.strip() for line in str(found.get("text") or "").splitlines() if line.strip())
    if len(text) > PAGE_CHARS:
        text = text[:PAGE_CHARS] + f"\n[... {len(text) - PAGE_CHARS} more characters]"
    links = "\n".join(f"- [{label[:80]}]({href})" for label, href in found.get("links") or [])
    return f"# {page.title()}\nURL: {page.url}\n\n{text}" + (f"\n\nLinks:\n{links}" if links else "")


def target(page: Any, selector: str | None, text: str | None) -> Any:
    """The element an action is about: by CSS selector, or by the text shown on it (a link, a button, a label)."""
    if selector:
        return page.locator(selector).first
    if text:
        for found in (page.get_by_role("link", name=text), page.get_by_role("button", name=text), page.get_by_label(text), page.get_by_placeholder(text)):
            if found.count():
                return found.first
        return page.get_by_text(text).first
    raise SandboxError("give a selector, or the text shown on the element.")


_held: dict[str, Any] = {}  # the profile locks this process holds, by control folder


def _profile(control: Path) -> str:
    """The session's browser profile, or one of this process's own when another process of the run (a mission's
    step on this machine) has the session's: Chromium allows one browser per profile."""
    import fcntl

    if str(control) in _held:
        return ".browser"
    control.mkdir(parents=True, exist_ok=True)
    lock = open(control / "browser.lock", "w")  # noqa: SIM115 - held while this process lives
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return f".browser-{os.getpid()}"
    _held[str(control)] = lock
    return ".browser"


class Browsers:
    """The browsers of a local backend's sessions: one each, in this process, started at first use."""

    def __init__(self) -> None:
        self._open: dict[str, Browser] = {}
        self._lock = threading.Lock()

    def act(self, backend: Any, session: dict, action: str, **params: Any) -> tuple[str, bytes | None]:
        """An action in the session's browser: what the agent reads, and the screenshot it took (PNG), if any."""
        browser = self._for(backend, session)
        selector, text = params.get("selector"), params.get("text")
        if action == "open":
            url = str(params["url"])
            return browser.run(lambda page: (page.goto(url, wait_until="load"), read(page))[1]), None
        if action == "read":
            return browser.run(read), None
        if action == "click":

            def click(page: Any) -> str:
                target(page, selector, text).click()
                page.wait_for_load_state("load")
                page.wait_for_timeout(CLICK_SETTLE_MS)  # a download the click started is saved meanwhile, and said with it
                return f"clicked; the page is now '{page.title()}' at {page.url}"

            return browser.run(click), None
        if action == "type":
            value, submit = str(params.get("value") or ""), bool(params.get("submit"))

            def type_in(page: Any) -> str:
                field = target(page, selector, text)
                field.fill(value)
                if submit:
                    field.press("Enter")
                    page.wait_for_load_state("load")
                return f"typed {len(value)} characters" + (f" and submitted; the page is now '{page.title()}' at {page.url}" if submit else "")

            return browser.run(type_in), None
        if action == "screenshot":
            shot: tuple[str, bytes] = browser.run(lambda page: (f"the page '{page.title()}' at {page.url}", page.screenshot()))
            return shot
        raise SandboxError(f"unknown browser action '{action}'.")

    def _for(self, backend: Any, session: dict) -> Browser:
        from mamabear.sandbox import jail

        with self._lock:
            found = self._open.get(session["id"])
            if found is not None and found.alive:
                return found
            layout, spec = backend.browser_jail(session)
            work = layout.work
            profile, downloads = work / _profile(layout.control), work / "downloads"
            for folder in (profile, downloads):
                folder.mkdir(exist_ok=True)
            jail.own([profile, downloads])
            browser = self._open[session["id"]] = Browser(layout.control, spec, profile, downloads)
            return browser

    def close(self, session_id: str | None = None) -> None:
        with self._lock:
            closing = [b for i, b in self._open.items() if session_id in (None, i)]
            self._open = {i: b for i, b in self._open.items() if session_id not in (None, i)}
        for browser in closing:
            browser.close()
