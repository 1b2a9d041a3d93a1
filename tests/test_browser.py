"""The pages as a browser shows them: a feedback page and the class insights page in headless Chromium.

Each page is opened at a phone's width (390 px, mobile emulation: the page's viewport tag applies) and at a
desktop's (1280 px), every <details> opened, and measured in the page: the document is no wider than the
viewport, no element reaches past its right or left edge (except inside a box that scrolls sideways on
purpose, such as the insights page's table of every student), and every image has loaded (naturalWidth > 0)
and fits. Chromium is Debian's ``chromium`` package (``make test`` installs it when run as root); without it
these tests are skipped with a message.

Headless Chromium will not make a window narrower than 500 px, so the width is set with the DevTools protocol
(``Emulation.setDeviceMetricsOverride``), spoken over ``--remote-debugging-pipe`` (file descriptors 3 and 4):
no other package is needed. :func:`screenshot` is what drew docs/*.png.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from autograder import config, insights, report
from autograder.engine import score
from autograder.i18n import json_fields, t

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WIDTHS = (390, 1280)
TIMEOUT_S = 60  # for each answer of the browser
# Measured in the page after every <details> is opened: what overflows the viewport, and every image's state.
MEASURE = """(() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const vw = document.documentElement.clientWidth;
  const scrolls = el => { for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return true; }
    return false; };
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.trim().replace(/\\s+/g, '.') : '');
  const overflowing = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if ((r.right > vw + 1 || r.left < -1) && !scrolls(el))
      overflowing.push(name(el) + ' [' + Math.round(r.left) + ', ' + Math.round(r.right) + '] ' +
                       (el.textContent || '').trim().slice(0, 60));
  }
  const images = Array.from(document.images).map(img => ({complete: img.complete, natural: img.naturalWidth,
    left: img.getBoundingClientRect().left, right: img.getBoundingClientRect().right}));
  return {viewport: vw, scrollWidth: document.documentElement.scrollWidth, overflowing: overflowing.slice(0, 20),
          images: images, height: document.documentElement.scrollHeight};
})()"""


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


class Browser:
    """Headless Chromium driven over the DevTools protocol's pipe (messages are JSON, each ended by a NUL byte)."""

    def __init__(self, executable: str) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        self.profile = tempfile.TemporaryDirectory(prefix="chromium-")

        def pipes() -> None:  # in the child: the protocol's pipe on descriptors 3 (its input) and 4 (its output)
            read = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)  # above 4, whatever the pipes' own numbers
            write = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            for source, target in ((read, 3), (write, 4)):
                os.dup2(source, target)
                os.set_inheritable(target, True)  # every other descriptor Python opened closes on exec (PEP 446)

        self.process = subprocess.Popen(
            [executable, "--headless", "--disable-gpu", "--no-sandbox", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--hide-scrollbars", "--mute-audio",
             f"--user-data-dir={self.profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=pipes, close_fds=False)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next = 0
        self.session = ""

    def send(self, method: str, params: dict | None = None, session: bool = True) -> dict[str, Any]:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait_for(self, event: str) -> dict[str, Any]:
        while True:
            message = self._read()
            if message.get("method") == event:
                return message.get("params", {})

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if not select.select([self._from_browser], [], [], TIMEOUT_S)[0]:
                raise RuntimeError(f"chromium did not answer within {TIMEOUT_S} s")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, path: Path, width: int, height: int = 900) -> None:
        """A fresh tab showing ``path`` at ``width`` CSS pixels (a phone below 600: mobile emulation)."""
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": width < 600})
        self.send("Page.enable")
        self.send("Page.navigate", {"url": path.resolve().as_uri()})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"the page's script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, full_height: int) -> bytes:
        """The page down to ``full_height`` CSS pixels, as PNG."""
        metrics = self.send("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": metrics["width"], "height": min(metrics["height"], full_height), "scale": 1}
        shot = self.send("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True})
        return base64.b64decode(shot["data"])

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False)
        except (OSError, RuntimeError, json.JSONDecodeError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self.profile.cleanup()


def screenshot(page: Path, width: int, out: Path, height: int = 1400) -> None:
    """Save a PNG of ``page`` at ``width`` (its top ``height`` pixels); used to draw docs/*.png."""
    executable = find_browser()
    assert executable, "chromium is missing"
    browser = Browser(executable)
    try:
        browser.open(page, width, min(height, 900))
        out.write_bytes(browser.screenshot(height))
    finally:
        browser.close()


# -- pages to look at -----------------------------------------------------------------------------------------------
LONG_NAME = "a_student_id_that_is_far_too_long_to_fit_on_one_line_of_a_phone_" * 2


def feedback_result() -> dict:
    """A scored result like a real one: failed checks with long messages (a long unbroken path and code name), a
    passed one, a question this -k run did not grade, and the grader's pictures under two questions."""
    from autograder import pictures
    import torch

    generator = torch.Generator().manual_seed(0)
    checks = [
        {"id": "test_kl", "question": "vae_loss", "title": "the KL part alone", "title_ja": "KL 項だけの値",
         "passed": False, **json_fields("message", t("KL 項の符号が逆です。KL = −0.5·Σ(1 + logvar − μ² − exp(logvar)) ≥ 0 です",
                                                     "the KL term has the wrong sign: KL = −0.5·Σ(1 + logvar − μ² − "
                                                     "exp(logvar)) ≥ 0"))},
        {"id": "test_crash", "question": "vae_loss", "title": "a scalar tensor", "title_ja": "スカラーのテンソル",
         "passed": False, **json_fields("message", t(
             "vae_loss で RuntimeError が発生しました：{x}", "vae_loss raised RuntimeError: {x}",
             x="mat1_and_mat2_shapes_cannot_be_multiplied_" * 4 + " …/" + "very_long_folder_name/" * 5))},
        {"id": "test_ok", "question": "vae_loss", "title": "KL(0, 0) = 0", "title_ja": "KL(0, 0) = 0", "passed": True,
         **json_fields("message", "")},
        {"id": "test_km", "question": "kmeans", "title": "the same clusters as scikit-learn",
         "title_ja": "scikit-learn と同じクラスタ", "passed": True, **json_fields("message", "")},
    ]
    latents = torch.randn(300, 2, generator=generator)
    labels = torch.randint(0, 10, (300,), generator=generator)
    drawn = [{"question": "kmeans", "caption_ja": "採点側の AE 潜在変数に対するあなたのクラスタ",
              "caption_en": "your clusters of the grader's AE latents",
              "uri": pictures.scatter(latents, labels, "k-means", "cluster")},
             {"question": "vae_loss", "caption_ja": "潜在変数（数字ごとの色）", "caption_en": "the latents by digit",
              "uri": pictures.scatter(latents, labels, "latents", "digit")}]
    result = score({"notebook": "x.ipynb", "checks": checks, "pictures": drawn, "skipped_cells": [],
                    "failed_cells": []}, config.questions())
    result["graded_at"] = "2025-01-02T03:04:05+00:00"
    for question in result["questions"].values():
        question["graded_at"] = result["graded_at"] if question["checks"] else None
    return result


def class_results(count: int = 40) -> dict[str, dict]:
    """A class of ``count`` hand-made results with the usual mistakes, crashes and zeros (long ids too)."""
    questions = config.questions()
    results = {}
    for i in range(count):
        student = LONG_NAME if i == 0 else f"s{i:03d}"
        checks = []
        for qid in questions:
            passed = (i + len(qid)) % 3 != 0
            message = (t("KL 項の符号が逆です", "the KL term has the wrong sign") if qid == "vae_loss" else
                       t("{name} で NotImplementedError が発生しました", "{name} raised NotImplementedError", name=qid)
                       if i % 7 == 0 else
                       t("{name} で RuntimeError が発生しました：x。考えられる原因: 行列積が {n} 個の入力特徴を期待しています",
                         "{name} raised RuntimeError: x. Likely cause: a matrix product expects {n} input features",
                         name=qid, n=i))
            checks.append({"id": f"test_{qid}", "question": qid, "title": f"{qid} works", "title_ja": f"{qid} が動く",
                           "passed": passed, **json_fields("message", "" if passed else message)})
        results[student] = score({"notebook": "x.ipynb", "checks": [] if i == 5 else checks}, questions)
        if i == 5:
            results[student].update(json_fields("runner_error", t("採点プログラム自体が失敗しました（{code}）",
                                                                  "the grader itself failed ({code})", code=-9)))
    return results


def _check_page(browser: Browser, page: Path, width: int) -> dict:
    browser.open(page, width)
    measured = browser.evaluate(MEASURE)
    assert measured["viewport"] == width, measured
    assert measured["scrollWidth"] <= width, (page.name, width, measured["scrollWidth"], measured["overflowing"])
    assert not measured["overflowing"], (page.name, width, measured["overflowing"])
    for image in measured["images"]:
        assert image["complete"] and image["natural"] > 0, (page.name, width, image)
        assert image["left"] >= -1 and image["right"] <= width + 1, (page.name, width, image)
    return measured


@pytest.fixture(scope="module")
def browser():
    executable = find_browser()
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install chromium; `make test` installs it as root): "
                    "the pages were not checked in a browser")
    opened = Browser(executable)
    yield opened
    opened.close()


def test_feedback_page_fits_a_phone_and_a_desktop(browser, tmp_path):
    page = tmp_path / "feedback.html"
    report.write_feedback_html(page, LONG_NAME, feedback_result(), lang="both")
    for width in WIDTHS:
        measured = _check_page(browser, page, width)
        assert len(measured["images"]) == 2
    # at 390 px each check is a block: its details sit below its title, as wide as the page's text
    browser.open(page, 390)
    layout = browser.evaluate("""(() => { const row = document.querySelector('table.checks tr:not(.head)');
      const title = row.querySelector('td.title').getBoundingClientRect();
      const details = row.querySelector('td.details').getBoundingClientRect();
      return {titleBottom: title.bottom, detailsTop: details.top, detailsWidth: details.width,
              body: document.body.clientWidth}; })()""")
    assert layout["detailsTop"] >= layout["titleBottom"] - 1, layout
    assert layout["detailsWidth"] >= 0.8 * layout["body"], layout


def test_insights_page_fits_a_phone_and_a_desktop(browser, tmp_path):
    page = tmp_path / "insights.html"
    page.write_text(insights.render_page(class_results(), config.questions(), lang="both"), encoding="utf-8")
    for width in WIDTHS:
        _check_page(browser, page, width)
    # a table sorts when its heading is clicked (the page's own script; no external asset)
    order = browser.evaluate("""(() => { const th = document.querySelector('#students th.sort:nth-child(2)');
      th.click(); const rows = Array.from(th.closest('table').tBodies[0].rows);
      return rows.map(r => parseFloat(r.cells[1].dataset.v)); })()""")
    assert order == sorted(order) and len(order) == 40
