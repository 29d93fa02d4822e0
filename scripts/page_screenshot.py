"""Re-shoot docs/img/page.png: the result view of the drum track featherbeat.testing.browser generates,
paused at 0:10, in headless Chromium against a real service on 127.0.0.1.

    .venv/bin/python scripts/page_screenshot.py docs/img/page.png
"""

import pathlib
import sys
import tempfile

from playwright.sync_api import sync_playwright

from featherbeat.testing.browser import CHROMIUM, CHROMIUM_ARGS, drum_track
from featherbeat.testing.service import running_service

tmp = pathlib.Path(tempfile.mkdtemp(prefix="featherbeat-shot-"))
track = drum_track(tmp / "drums-120bpm.wav")
with running_service(tmp / "svc", {"FEATHERBEAT_KEEP_UPLOADS": "1"}) as svc, sync_playwright() as p:
    b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = b.new_context(viewport={"width": 1200, "height": 1100}, color_scheme="light").new_page()
    page.goto(svc.base_url + "/")
    page.wait_for_selector("body[data-ready='1']")
    page.set_input_files("#file", str(track))
    page.wait_for_selector("#result-view:not([hidden])", timeout=90000)
    page.wait_for_function("() => !document.getElementById('play').disabled")
    page.locator("#result-title").click()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(400)
    page.mouse.move(5, 5)  # no hover box in the picture
    page.screenshot(path=sys.argv[1], full_page=True)
    b.close()
