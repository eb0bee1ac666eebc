"""End to end in a real browser: Debian's Chromium (``make test`` installs it), driven by Playwright (which never
downloads a browser here), against a real ``impasto serve`` with a worker process: upload two images, start a fast
job from the keyboard (focus stays on the job's controls), see the preview and the result, download it and check
the file; a bad file refused as soon as it is chosen, a dropped picture named, the options' labels for the chosen
method, the page on a phone-sized touch screen."""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from impasto.api import catalog

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is missing (pip install 'impasto[web-test]')")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed: `make test` installs it (apt-get install chromium, as root)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, port: int, *extra: str) -> subprocess.Popen:
    """``impasto serve`` in its own process; returns once it answers and a worker has loaded its networks."""
    cmd = [sys.executable, "-m", "impasto", "serve", "--port", str(port), "--data", str(data), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"impasto serve exited: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                if json.load(r)["ready_workers"] >= 1:
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("impasto serve did not answer within 120 s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    proc = start_server(tmp_path_factory.mktemp("serve"), port, "--workers", "1")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


# Pages are opened with bypass_csp: Playwright's wait_for_function evaluates strings, which the page's
# Content-Security-Policy (script-src 'self', no eval) forbids; the page itself needs no eval.
@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.mark.slow
def test_upload_start_preview_result_download(server, browser, tmp_path, content_path, style_path):
    page = browser.new_page(viewport={"width": 1200, "height": 900}, accept_downloads=True, bypass_csp=True)
    failed = []
    page.on("requestfailed", lambda r: failed.append(r.url) if not r.url.endswith("/events") else None)
    page.goto(server + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    offered = [m["name"] for m in catalog()["methods"]]  # every registered method, none hard-coded in the page
    assert page.locator("#opt-method option").all_inner_texts() == offered and {"gatys", "fast"} <= set(offered)
    page.set_input_files("#content-file", str(content_path))
    page.set_input_files("#style-file", str(style_path))
    # Thumbnails appear once the browser has decoded each picture (asynchronous): wait for them, then count.
    sync_api.expect(page.locator("#content-thumbs img")).to_have_count(1, timeout=10_000)
    sync_api.expect(page.locator("#style-thumbs img")).to_have_count(1, timeout=10_000)
    assert page.inner_text("#content-chosen") == "chelsea.png"
    assert page.inner_text("#style-chosen") == "starry_night.jpg"
    assert "No file chosen" not in page.inner_text("body")
    page.select_option("#opt-method", "fast")
    page.fill("#opt-size", "256")
    page.wait_for_function("document.getElementById('estimate').textContent.includes('peak memory')")
    sync_api.expect(page.locator("#field-steps")).to_be_hidden()  # a one-pass method has no steps
    # Start from the keyboard: Tab reaches the button, Enter presses it.
    page.locator("body").focus()
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "start":
            break
    assert page.evaluate("document.activeElement.id") == "start", "Start cannot be reached with Tab"
    page.keyboard.press("Enter")
    # Start is disabled at once: the focus moves to the job's status, then to Cancel, never to the page itself.
    page.wait_for_function("document.activeElement !== document.body && document.activeElement.id !== 'start'")
    assert page.evaluate("document.activeElement.id") in ("status", "cancel", "download")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Done')", timeout=90_000)
    assert page.evaluate("document.activeElement.tagName") != "BODY"
    assert page.inner_text("#estimate").startswith("Took ")  # the time it took replaces the estimate
    page.wait_for_function("document.getElementById('preview').naturalWidth > 0")
    assert page.locator("#preview").is_visible() and page.locator("#content-view").is_visible()
    first_preview_ms = page.evaluate("window.impastoTimings.firstPreview")
    assert first_preview_ms is not None and first_preview_ms > 0
    with page.expect_download() as info:
        page.click("#download")
    saved = tmp_path / "download.png"
    info.value.save_as(saved)
    assert info.value.suggested_filename == "chelsea-starry_night.png"
    image = Image.open(saved)
    assert image.size == (256, 170)
    meta = json.loads(image.info["impasto"])
    assert meta["options"]["method"] == "fast" and meta["options"]["size"] == 256 and meta["content"] == "chelsea.png"
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    content = np.asarray(Image.open(content_path).convert("RGB").resize((256, 170)), dtype=np.float32)
    assert pixels.std() > 20 and np.abs(pixels - content).mean() > 10  # a picture, and not the photo
    page.wait_for_function("document.querySelectorAll('#jobs li').length === 1")  # the session's earlier results
    assert failed == []  # (an event stream the page closes itself counts as aborted: left out)
    print(f"\nfirst preview on screen {first_preview_ms:.0f} ms after Start (fast, 256 px)")


@pytest.mark.slow
def test_a_built_in_style_is_picked_from_its_thumbnail_with_the_keyboard(server, browser, content_path):
    offer = json.load(urllib.request.urlopen(server + "/api/options", timeout=10))["builtin"]
    if not offer["available"]:
        pytest.skip(offer["message"])
    page = browser.new_page(viewport={"width": 1200, "height": 900}, bypass_csp=True)
    page.goto(server + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    styles = page.locator("#builtin button")
    sync_api.expect(styles).to_have_count(26)
    assert page.locator("#builtin-missing").is_hidden()
    third = styles.nth(3)
    assert page.get_by_role("button", name="Built-in style 3", exact=True).get_attribute("data-model") == "builtin:3"
    assert third.inner_text() == "3" and third.get_attribute("aria-pressed") == "false"
    page.wait_for_function("document.querySelectorAll('#builtin img')[3].naturalWidth === 96", timeout=60_000)
    page.set_input_files("#content-file", str(content_path))
    third.focus()
    page.keyboard.press("Space")  # a button: Space and Enter press it
    assert third.get_attribute("aria-pressed") == "true" and styles.nth(0).get_attribute("aria-pressed") == "false"
    assert page.input_value("#opt-method") == "model" and page.locator("#style-drop").is_hidden()
    assert page.is_enabled("#start")  # no painting and no model file needed
    page.fill("#opt-size", "96")
    page.click("#start")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Done')", timeout=90_000)
    job = json.load(urllib.request.urlopen(server + "/api/jobs?limit=1", timeout=10))["jobs"][0]
    assert job["options"]["model"] == "builtin:3" and job["options"]["size"] == 96 and job["styles"] == []
    third.press("Enter")  # pressed again: put back
    assert third.get_attribute("aria-pressed") == "false"


def _png_base64(size: tuple[int, int] = (24, 16)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.slow
def test_a_bad_file_is_refused_when_chosen_and_the_options_fit_a_phone(server, browser, tmp_path, content_path):
    bad = tmp_path / "notes.png"
    bad.write_text("these are my notes, not a picture")
    page = browser.new_page(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)  # the page's CSP
    blocked = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(server + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling on a phone
    assert not page.locator("text=drop it here").is_visible()  # nothing is dropped on a touch screen
    page.set_input_files("#style-file", str(bad))  # refused at once, before any Start, in plain words
    error = page.locator("#error")
    error.wait_for(state="visible", timeout=10_000)
    assert error.inner_text() == "notes.png is not a picture: choose a picture saved as PNG, JPEG, WebP or TIFF."
    assert page.inner_text("#style-chosen") == "No painting yet" and page.is_disabled("#start")
    page.set_input_files("#content-file", str(content_path))
    # A picture dropped on the paintings' zone is taken and named like a chosen one.
    page.evaluate("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
        const drop = new DragEvent("drop", { dataTransfer: data, bubbles: true });
        document.getElementById("style-drop").dispatchEvent(drop);
    }""", _png_base64())  # fmt: skip
    sync_api.expect(page.locator("#style-chosen")).to_have_text("dropped.png", timeout=10_000)
    assert page.locator("#error").is_hidden() and page.is_enabled("#start")
    assert "No file chosen" not in page.inner_text("body")
    # More options: people's labels, only for the chosen method, within the screen.
    page.click("#more summary")
    memory = page.locator("label[for='opt-lbfgs_history']")
    assert memory.inner_text() == "L-BFGS memory" and memory.is_visible()
    assert "lbfgs history" not in page.inner_text("#more-options").lower()
    page.select_option("#opt-method", "fast")
    assert not memory.is_visible() and page.locator("label[for='opt-tile']").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for legend in page.locator("#more-options legend").all():
        if legend.is_visible():
            box = legend.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert blocked == []  # the page needs nothing its Content-Security-Policy forbids
