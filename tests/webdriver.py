"""Just enough of the W3C WebDriver protocol (https://www.w3.org/TR/webdriver2/) to drive headless
Chromium through chromedriver with urllib: no selenium, no new dependency.

    with Browser(tmp_path) as b:
        b.get("file:///.../grid.html")
        rows = b.execute("return document.querySelectorAll('tr').length")
        b.screenshot(tmp_path / "page.png")

chromedriver runs in its own process group (it starts Chromium as a child), listening on a free
port of 127.0.0.1 only: without --allowed-ips it accepts local connections alone."""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

INSTALL = ("sudo apt-get install -y --no-install-recommends chromium chromium-driver "
           "(or run .ci/browsers.sh, which does it when chromedriver is missing)")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
CHROME_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,2000",
    "--disable-dev-shm-usage",  # containers often have a 64 MB /dev/shm; Chromium crashes on it
    # nothing phones home while a test runs
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--metrics-recording-only", "--no-default-browser-check",
]


class WebDriverError(RuntimeError):
    pass


def missing() -> str | None:
    """Why a browser cannot be driven here (with the command that fixes it), or None."""
    lacking = [name for name, found in (("chromedriver", find_driver()), ("chromium", find_chrome())) if not found]
    return f"{' and '.join(lacking)} not found on PATH; install with: {INSTALL}" if lacking else None


def find_driver() -> str | None:
    return shutil.which("chromedriver")


def find_chrome() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM the process group `proc` leads (started with start_new_session=True), then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def http_json(method: str, url: str, body: dict | None = None, timeout: float = 60) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:  # WebDriver errors: {"value": {"error": ..., "message": ...}}
        try:
            value = json.loads(e.read())["value"]
            raise WebDriverError(f"{method} {url}: {value['error']}: {value['message'][:500]}") from None
        except (ValueError, KeyError, TypeError):
            raise WebDriverError(f"{method} {url}: HTTP {e.code}") from None


class Browser:
    """A chromedriver process and one headless Chromium session; a context manager that always
    ends both. `workdir` gets the driver's log and the browser profile."""

    def __init__(self, workdir: Path, args: list[str] = CHROME_ARGS, start_timeout: float = 60):
        why = missing()
        if why:
            raise WebDriverError(why)
        self.workdir, self.args, self.start_timeout = Path(workdir), list(args), start_timeout
        self.driver: subprocess.Popen | None = None
        self.session: str | None = None

    # lifecycle

    def __enter__(self) -> Browser:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        port, log = free_port(), self.workdir / "chromedriver.log"
        self.url = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen([find_driver(), f"--port={port}", f"--log-path={log}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                if http_json("GET", f"{self.url}/status", timeout=2)["value"]["ready"]:
                    break
            except (OSError, WebDriverError, KeyError):
                pass
            if self.driver.poll() is not None or time.monotonic() > deadline:
                raise WebDriverError(f"chromedriver did not start (exit {self.driver.poll()}); log: {log}")
            time.sleep(0.1)
        options = {"binary": find_chrome(), "args": self.args + [f"--user-data-dir={self.workdir / 'chrome-profile'}"]}
        caps = {"browserName": "chrome", "goog:chromeOptions": options,
                "goog:loggingPrefs": {"performance": "ALL"}}  # CDP Network events, read by requests()
        value = http_json("POST", f"{self.url}/session", {"capabilities": {"alwaysMatch": caps}},
                          timeout=self.start_timeout)["value"]
        self.session = value["sessionId"]

    def close(self) -> None:
        if self.session is not None:
            try:
                http_json("DELETE", f"{self.url}/session/{self.session}", timeout=20)
            except (OSError, WebDriverError):
                pass  # the process group goes below either way
            self.session = None
        if self.driver is not None:
            stop_group(self.driver)
            self.driver = None

    # commands

    def _cmd(self, method: str, path: str, body: dict | None = None):
        return http_json(method, f"{self.url}/session/{self.session}{path}", body)["value"]

    def get(self, url: str) -> None:
        self._cmd("POST", "/url", {"url": url})

    def current_url(self) -> str:
        return self._cmd("GET", "/url")

    def title(self) -> str:
        return self._cmd("GET", "/title")

    def execute(self, script: str, *args):
        """Run `script` (a function body: `return ...`) in the page; JSON values come back."""
        return self._cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find_all(self, css: str) -> list[str]:
        return [e[ELEMENT] for e in self._cmd("POST", "/elements", {"using": "css selector", "value": css})]

    def text(self, element: str) -> str:
        return self._cmd("GET", f"/element/{element}/text")

    def screenshot(self, path: Path) -> bytes:
        png = base64.b64decode(self._cmd("GET", "/screenshot"))
        Path(path).write_bytes(png)
        return png

    def requests(self, document: str | None = None) -> list[str]:
        """URLs the browser asked for since the last call (CDP Network.requestWillBeSent from the
        performance log, data: URLs included); only those loaded for `document` when given (the
        browser's own pages, like its new-tab page, load things too)."""
        entries = self._cmd("POST", "/se/log", {"type": "performance"})
        messages = (json.loads(e["message"])["message"] for e in entries)
        sent = [m["params"] for m in messages if m["method"] == "Network.requestWillBeSent"]
        return [p["request"]["url"] for p in sent if document is None or p.get("documentURL") == document]

    def wait_for(self, script: str, timeout: float, what: str, *args, interval: float = 0.5):
        """Poll `script` until it returns something truthy; that value, or WebDriverError naming `what`."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                last = self.execute(script, *args)
            except WebDriverError as e:  # a page still navigating can fail a script; try again
                last = e
            if last and not isinstance(last, WebDriverError):
                return last
            time.sleep(interval)
        raise WebDriverError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r:.300}) "
                             f"at {self.current_url()}")
