"""Open the Snakemake report in headless Chromium and check that its first screen shows the results.

For every window size (default 1280x800 and 1920x1080) the script loads ``report.html`` as a
person's browser would, waits until the report's JavaScript has drawn the page, takes a screenshot
(``report_<W>x<H>.png`` in ``--out-dir``) and measures the results page's headline: the first table
of the results fragment (``#aam-results``, written by ``aam summary``) and the heading above it.
It passes when, without scrolling, that heading lies wholly inside the window, is the element a
person sees there (nothing covers it), and the table's first data row is on screen too.

One line per size, then the verdict; exit status 0 (pass), 1 (the headline is off the first screen)
or 2 (the check could not run: no Chromium, no results fragment, a browser error)::

    python scripts/check_report.py results/report.html --out-dir results/report_check
    1280x800: heading "ibd2538" top 76 px, bottom 104 px; first row bottom 212 px; visible  -> ...png

Why the Chrome DevTools protocol over ``--remote-debugging-pipe`` (by hand, not a library):
``--screenshot`` and ``--dump-dom`` give no element positions, and the protocol's pipe transport
(NUL-delimited JSON on file descriptors 3 and 4) needs nothing beyond the standard library, where
Playwright or a websocket client would be one more dependency for one script.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--remote-debugging-pipe",
)

# Runs in the page: where the results fragment's first table and its heading sit in the viewport.
# Returns null until the report's JavaScript has drawn the fragment.
MEASURE = r"""
(() => {
  const root = document.querySelector('#aam-results');
  if (!root) return null;
  const table = root.querySelector('table');
  if (!table) return {error: 'the results fragment has no table'};
  let heading = null;
  for (const h of root.querySelectorAll('h1, h2, h3, h4')) {
    if (h.compareDocumentPosition(table) & Node.DOCUMENT_POSITION_FOLLOWING) heading = h;
  }
  if (!heading) return {error: 'no heading above the first table'};
  const rows = table.querySelectorAll('tr');
  const firstRow = rows.length > 1 ? rows[1] : rows[0];
  const box = heading.getBoundingClientRect();
  const row = firstRow.getBoundingClientRect();
  const x = Math.min(Math.max(box.left + 4, 0), window.innerWidth - 1);
  const y = Math.min(Math.max(box.top + box.height / 2, 0), window.innerHeight - 1);
  const seen = document.elementFromPoint(x, y);
  return {
    heading: heading.textContent.trim(), headingTop: box.top, headingBottom: box.bottom,
    rowBottom: row.bottom, tableTop: table.getBoundingClientRect().top,
    resultsHeight: root.getBoundingClientRect().height,
    width: window.innerWidth, height: window.innerHeight, scrollY: window.scrollY,
    uncovered: !!seen && (seen === heading || heading.contains(seen)),
  };
})()
"""


class CheckError(RuntimeError):
    """The check could not run (exit status 2)."""


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium executable: `explicit`, else the first of CHROMIUM_NAMES on PATH."""
    if explicit:
        return explicit if shutil.which(explicit) else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class DevTools:
    """A Chromium process driven over the DevTools pipe (fd 3: commands in, fd 4: replies out)."""

    def __init__(self, chromium: str, profile: Path, timeout: float) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire() -> None:  # runs in the child before exec: the protocol's fds are 3 and 4
            # Copies above 10 first, so that neither end lands on the other's target; dup2 makes
            # 3 and 4 inheritable (pipes are created close-on-exec).
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_r, from_browser_w)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)
            os.closerange(5, 4096)

        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, close_fds=False, preexec_fn=wire)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.timeout, self._next_id, self._buffer, self.events = timeout, 0, b"", []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise CheckError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 65536)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
                raise CheckError(f"Chromium exited: {err[-1] if err else 'no message'}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CheckError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method and event.get("sessionId") == session:
                    del self.events[i]
                    return
            self.events.append(self._read_message(deadline))

    def close(self) -> None:
        with contextlib.suppress(CheckError, OSError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)


def measure(browser: DevTools, url: str, width: int, height: int, shot: Path | None) -> dict:
    """Load `url` in a fresh tab of `width` x `height`, wait for the results fragment, measure it
    and (when `shot` is given) save a screenshot of the first screen."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
        browser.send("Page.enable", session=session)
        browser.send("Page.navigate", {"url": url}, session)
        browser.wait_event("Page.loadEventFired", session)
        deadline = time.monotonic() + browser.timeout
        result = None
        while result is None:
            value = browser.send("Runtime.evaluate", {"expression": MEASURE, "returnByValue": True},
                                 session)["result"].get("value")
            if value is not None:
                result = value
            elif time.monotonic() > deadline:
                raise CheckError(f"{url}: no #aam-results fragment appeared (is this an AAM report?)")
            else:
                time.sleep(0.2)
        if "error" in result:
            raise CheckError(f"{url}: {result['error']}")
        time.sleep(0.5)  # let late layout (the rule graph) settle, then measure again
        result = browser.send("Runtime.evaluate", {"expression": MEASURE, "returnByValue": True},
                              session)["result"]["value"]
        if shot is not None:
            data = browser.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
            shot.write_bytes(base64.b64decode(data))
        return result
    finally:
        browser.send("Target.closeTarget", {"targetId": target})


def visible(m: dict) -> bool:
    """The heading wholly in the first screen and uncovered, and the table's first row on it."""
    return (m["headingTop"] >= 0 and m["headingBottom"] <= m["height"] and m["uncovered"]
            and m["rowBottom"] <= m["height"] and m["scrollY"] == 0)


def check_report(report: Path, sizes: list[tuple[int, int]], out_dir: Path | None = None,
                 chromium: str | None = None, timeout: float = 60.0) -> list[dict]:
    """Measure the headline at every size; each result gains ``size``, ``visible``, ``screenshot``."""
    exe = find_chromium(chromium)
    if exe is None:
        raise CheckError("no Chromium found (Debian: apt-get install chromium)")
    if not report.is_file():
        raise CheckError(f"{report}: file not found")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="aam-chromium-") as profile:
        browser = DevTools(exe, Path(profile), timeout)
        try:
            for width, height in sizes:
                shot = out_dir / f"report_{width}x{height}.png" if out_dir is not None else None
                m = measure(browser, report.resolve().as_uri(), width, height, shot)
                m.update(size=f"{width}x{height}", visible=visible(m), screenshot=str(shot) if shot else None)
                results.append(m)
        finally:
            browser.close()
    return results


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1280x800, got {text!r}") from None
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="the report (snakemake --report results/report.html)")
    parser.add_argument("--sizes", default="1280x800,1920x1080",
                        help="window sizes, comma-separated (default: 1280x800,1920x1080)")
    parser.add_argument("--out-dir", type=Path, default=None, help="folder for the screenshots")
    parser.add_argument("--chromium", default=None, help="the browser executable (default: found on PATH)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the browser")
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    try:
        results = check_report(args.report, sizes, args.out_dir, args.chromium, args.timeout)
    except CheckError as err:
        print(f"check_report: {err}", file=sys.stderr)
        return 2
    for m in results:
        shot = f"  -> {m['screenshot']}" if m["screenshot"] else ""
        print(f"{m['size']}: heading {m['heading']!r} top {m['headingTop']:.0f} px, bottom "
              f"{m['headingBottom']:.0f} px; first row bottom {m['rowBottom']:.0f} px; "
              f"{'visible' if m['visible'] else 'NOT visible'}{'' if m['uncovered'] else ' (covered)'}{shot}")
    ok = all(m["visible"] for m in results)
    print(f"the results headline is {'' if ok else 'NOT '}on the first screen")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
