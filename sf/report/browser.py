"""Headless Chromium over the DevTools protocol (a pipe, no port, no Python dependency): open a report, run
JavaScript in it, collect every console error and uncaught exception, take a screenshot.

Used by the browser test and `bench/report_browser.py`. Chromium is the Debian package `chromium`
(`/usr/bin/chromium`); `find_chromium()` returns None where it is absent.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    env = os.environ.get("SF_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless browser with one page. Messages are JSON, NUL-terminated, over fds 3 (in) and 4 (out)."""

    def __init__(self, binary: str | None = None, width: int = 1400, height: int = 1000, timeout: float = 60.0):
        binary = binary or find_chromium()
        if binary is None:
            raise BrowserError("no Chromium found (apt-get install chromium)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="sf-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The child must see the pipe ends as fds 3 and 4.
        args = [binary, "--headless", "--disable-gpu", "--no-sandbox", "--remote-debugging-pipe",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
                "--disable-background-networking", "--disable-component-update", "--mute-audio",
                f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"]

        def wire():  # in the child: move both ends out of the way first, in case one of them is fd 3 or 4
            r, w = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(args, preexec_fn=wire, close_fds=False,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        self.session = None
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    # -------------------------------------------------------------- protocol

    def _read_message(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium closed the pipe (exit code {self.proc.poll()})")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise BrowserError(f"{method}: {m['error'].get('message')}")
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def wait_for(self, method: str, timeout: float | None = None) -> dict:
        for i, e in enumerate(self.events):
            if e["method"] == method:
                return self.events.pop(i)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            m = self._read_message(deadline)
            if m.get("method") == method:
                return m
            if "method" in m:
                self.events.append(m)

    # -------------------------------------------------------------- what tests use

    def open(self, path: str | Path) -> None:
        self.events = [e for e in self.events if e["method"] != "Page.loadEventFired"]
        self.call("Page.navigate", {"url": Path(path).resolve().as_uri()})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise BrowserError(f"{expression[:60]}...: {r['exceptionDetails'].get('text')} "
                               f"{r['exceptionDetails'].get('exception', {}).get('description', '')}")
        return r["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors/warnings-as-errors, uncaught exceptions and browser log errors seen so far."""
        self.call("Runtime.evaluate", {"expression": "0"})  # flush pending events
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", "")))
                                                                    for a in p.get("args", [])))
            elif e["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + p["entry"].get("text", "") + " " + p["entry"].get("url", ""))
        return out

    def screenshot(self, path: str | Path, full_page: bool = False) -> Path:
        params: dict = {"format": "png"}
        if full_page:
            m = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": m["width"], "height": min(m["height"], 6000), "scale": 1})
        data = base64.b64decode(self.call("Page.captureScreenshot", params)["data"])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close", session=False)
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# What the test asserts and the bench prints, read from the page itself after real clicks.
_ROWS = "Array.from(document.querySelectorAll('#product-table tbody.product'))"
_VISIBLE = _ROWS + ".filter(b => !b.hidden)"


def inspect_report(html: str | Path, screenshot: str | Path | None = None, binary: str | None = None) -> dict:
    """Open a report, click through it, and say what happened: console errors, product rows, the order after
    sorting by each column (both directions), a category filter's effect, a product's detail, a screenshot."""
    facts: dict = {}
    with Chromium(binary) as b:
        b.open(html)
        facts["rows"] = b.evaluate(f"{_ROWS}.length")
        facts["ids"] = b.evaluate(f"{_ROWS}.map(b => b.dataset.id)")
        facts["wape"] = b.evaluate(f"{_ROWS}.map(b => b.dataset.wape === '' ? null : parseFloat(b.dataset.wape))")
        facts["category"] = b.evaluate(f"{_ROWS}.map(b => b.dataset.category)")
        sorted_by = {}
        for key in b.evaluate("Array.from(document.querySelectorAll('#product-table th.sortable')).map(t => t.dataset.key)"):
            for direction in ("ascending", "descending"):
                b.evaluate(f"document.querySelector('#product-table th[data-key={key}]').click()")
                state = b.evaluate(f"document.querySelector('#product-table th[data-key={key}]').getAttribute('aria-sort')")
                sorted_by[(key, state)] = b.evaluate(
                    f"{_ROWS}.map(b => b.dataset['{key}'])")
        facts["sorted"] = sorted_by
        cats = sorted({c for c in facts["category"] if c})
        if cats:
            b.evaluate("(() => { const s = document.getElementById('f-category'); s.value = " + json.dumps(cats[0])
                       + "; s.dispatchEvent(new Event('change')); })()")
            facts["filter"] = (cats[0], b.evaluate(f"{_VISIBLE}.map(b => b.dataset.category)"),
                               b.evaluate("document.getElementById('f-count').textContent"))
            b.evaluate("(() => { const s = document.getElementById('f-category'); s.value = ''; "
                       "s.dispatchEvent(new Event('change')); })()")
        b.evaluate("document.querySelector('th[data-key=wape]') && document.querySelector('th[data-key=wape]').click()")
        b.evaluate(f"{_ROWS}[0].querySelector('tr.summary').click()")
        facts["detail"] = b.evaluate(
            f"(() => {{ const d = {_ROWS}[0].querySelector('tr.detail'); return {{hidden: d.hidden, "
            "svgs: d.querySelectorAll('svg').length, imgs: d.querySelectorAll('img').length, "
            "text: d.innerText.slice(0, 400)}; })()")
        facts["external"] = b.evaluate(
            "Array.from(document.querySelectorAll('[src],[href],link')).map(e => e.getAttribute('src') || "
            "e.getAttribute('href') || '').filter(u => u && !u.startsWith('data:') && !u.startsWith('#'))")
        b.evaluate("window.scrollTo(0, 0)")
        if screenshot is not None:
            facts["screenshot"] = str(b.screenshot(screenshot, full_page=True))
        facts["errors"] = b.errors()
    return facts
