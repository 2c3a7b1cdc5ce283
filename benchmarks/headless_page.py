"""The browser page (clients/web) in headless Chromium, its microphone a speech file: Chromium's fake
capture device plays the WAV, the page streams it to an `emostream serve` over the documented protocol and
draws the avatar. Driven through the Chrome DevTools Protocol (a WebSocket, `websockets`): read the page's
own tally (`window.emostream.summary()`: frames, jaw opening, capture -> shown latency) and a screenshot.

    emostream bench web-page [speech.wav] [--seconds 30]   (default: the bundled speech sample)

Writes benchmarks/results/web_page.{json,md} and web_page.png (the screenshot). Needs Debian's chromium.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from websockets.sync.client import connect

from emostream.clients.local_server import LocalServer

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
ROOT = Path(__file__).resolve().parent.parent


def chromium() -> str | None:
    return next((path for name in CHROMIUM if (path := shutil.which(name))), None)


class Page:
    """One tab, evaluated and photographed over the DevTools protocol."""

    def __init__(self, websocket_url: str) -> None:
        self._open = contextlib.ExitStack()  # websockets wants its connection entered as a context
        self.socket = self._open.enter_context(connect(websocket_url, max_size=64 * 2**20))
        self.ids = itertools.count(1)

    def call(self, method: str, **params: object) -> dict:
        call_id = next(self.ids)
        self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.socket.recv(timeout=60))
            if reply.get("id") == call_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        self._open.close()


@contextlib.contextmanager
def open_page(url: str, speech: Path, size: tuple[int, int] = (960, 720)) -> Iterator[Page]:
    """Chromium showing `url`, its microphone playing `speech` (a WAV)."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed: apt-get install chromium")
    # Chromium's helper processes can outlive the browser for a moment and still write to the profile:
    # the whole process group is stopped before the profile goes, and a straggler's file never fails a run.
    with tempfile.TemporaryDirectory(prefix="emostream-chromium-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen([
            binary, "--headless=new", "--no-sandbox", "--no-first-run", f"--user-data-dir={profile}",
            "--remote-debugging-port=0", f"--window-size={size[0]},{size[1]}",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={speech}", "--autoplay-policy=no-user-gesture-required",
            "--use-angle=swiftshader", "--enable-unsafe-swiftshader", url,
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text().strip():
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("chromium did not open its DevTools port")
                time.sleep(0.1)
            port = port_file.read_text().split()[0]
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10).read())
            page = Page(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
            try:
                yield page
            finally:
                page.close()
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Terminates Chromium and every helper it started (its own session), killing what lingers."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait_s)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _group_alive(process.pid):
            time.sleep(0.05)
        if not _group_alive(process.pid):
            return


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(page: Page, condition: str, timeout_s: float) -> bool:
    """Polls a JavaScript condition until it holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(RuntimeError):
            if page.evaluate(condition):
                return True
        time.sleep(0.25)
    return False


def run(speech: Path, seconds: float, screenshot: Path, query: str = "autostart=1") -> dict:
    """The page (`/?query`) against a fresh local server for `seconds` of streaming; its summary and a
    screenshot."""
    with LocalServer(["--max-sessions", "2"]) as server, open_page(f"{server.http}/?{query}", speech) as page:
        if not wait_for(page, "window.emostream && window.emostream.stats.state === 'streaming'", 60):
            state = page.evaluate("window.emostream ? JSON.stringify(window.emostream.summary()) : 'no page'")
            raise RuntimeError(f"the page did not start streaming: {state}")
        time.sleep(seconds)
        summary = page.evaluate("window.emostream.summary()")
        trace = page.evaluate("window.emostream.stats.mouthTrace")
        page.screenshot(screenshot)
    assert isinstance(summary, dict)
    return {"summary": summary, "mouth_trace": trace}


def main(argv: list[str] | None = None) -> None:
    from emostream.benchmarks.common import machine, write_result

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("speech", type=Path, nargs="?", default=ROOT / "runtime" / "assets" / "speech_sample.wav",
                        help="a WAV the fake microphone plays (looped)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    results = ROOT / "benchmarks" / "results"
    result = run(args.speech, args.seconds, results / "web_page.png")
    s = result["summary"]
    result = {"benchmark": "web_page", "machine": machine(), "speech": args.speech.name, "seconds": args.seconds,
              **{k: s[k] for k in ("faceFrames", "bodyFrames", "sampleRate", "shown", "received", "mouthMax",
                                   "algorithmicLatencyMs", "avatar", "perfectSync")}}  # fmt: skip
    write_result("web_page", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
