"""The web page end to end: real headless Chromium against a real server on 127.0.0.1.

One generated drum-like track is uploaded through the file picker; the tests then read what
a person would see: the progress bar, the summary, the drawing (canvas pixels compared with
the analysis JSON the API serves), playback, keys, zoom, downloads, a reload of /a/{id}, a
phone-sized screen, and the errors (not audio, too big, token, unknown id). The service is
the shared harness (src/featherbeat/testing/service.py: gunicorn + consumer as `featherbeat serve`
runs them). A screenshot of the result view goes to test-artifacts/page-result.png.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from featherbeat.testing.browser import CHROMIUM, CHROMIUM_ARGS, drum_track
from featherbeat.testing.service import Service, running_service

pytestmark = [pytest.mark.browser, pytest.mark.service, pytest.mark.timeout(180)]

playwright_api = pytest.importorskip("playwright.sync_api")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A real featherbeat service (gunicorn + consumer, embedded SQLite) on 127.0.0.1 that
    keeps the uploaded audio, so the page can play it again after a reload."""
    with running_service(
        tmp_path_factory.mktemp("page-service"), env={"FEATHERBEAT_KEEP_UPLOADS": "1"}
    ) as svc:
        yield svc


@pytest.fixture(scope="module")
def server(service: Service) -> str:
    return service.base_url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed; run `make system-deps` or set CHROMIUM (README)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def track(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return drum_track(tmp_path_factory.mktemp("page-audio") / "drums-120bpm.wav")


def new_page(browser: Any, **kwargs: Any) -> Any:
    context = browser.new_context(
        viewport={"width": 1200, "height": 1100}, accept_downloads=True, **kwargs
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # checked at the end of each test: a page that throws is a bug
    return page


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)


# Reads the track canvas back and measures it against the analysis: runs in the page.
MEASURE_JS = """
([analysis]) => {
  const canvas = document.getElementById("track-canvas");
  const lanes = JSON.parse(canvas.dataset.lanes);
  const view = JSON.parse(canvas.dataset.view);
  const dpr = canvas.width / view.width;
  const ctx = canvas.getContext("2d");
  const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const probe = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
  const rgb = (name) => {
    probe.fillStyle = getComputedStyle(document.body).getPropertyValue(name).trim();
    probe.fillRect(0, 0, 1, 1);
    return Array.from(probe.getImageData(0, 0, 1, 1).data.slice(0, 3));
  };
  const at = (x, y) => {
    const i = (Math.round(y * dpr) * canvas.width + Math.round(x * dpr)) * 4;
    return [img.data[i], img.data[i + 1], img.data[i + 2]];
  };
  const near = (a, b, tol = 40) => Math.abs(a[0] - b[0]) + Math.abs(a[1] - b[1]) + Math.abs(a[2] - b[2]) <= tol;
  const wave = rgb("--wave"), beat = rgb("--beat"), down = rgb("--downbeat"), bg = rgb("--canvas-bg");

  // Waveform: drawn height per column (CSS px) in the waveform lane.
  const [w0, w1] = lanes.waveform;
  const heights = [];
  for (let x = 0; x < view.width; x++) {
    let h = 0;
    for (let y = w0; y < w1; y++) if (near(at(x, y), wave)) h++;
    heights.push(h);
  }
  // Beat ticks: runs of tick colour along one row near the bottom of the beats lane.
  const runs = (colour) => {
    const xs = [];
    let inRun = false;
    for (let x = 0; x < view.width; x++) {
      const hit = near(at(x, lanes.beats[1] - 2), colour);
      if (hit && !inRun) xs.push(x);
      inRun = hit;
    }
    return xs;
  };
  // Sections: the colour at the middle of each section's band.
  const sectionColours = analysis.sections.map((s) => {
    const x = ((s.start + s.duration / 2 - view.start) / view.span) * view.width;
    return at(x, (lanes.sections[0] + lanes.sections[1]) / 2 - 4);
  });
  return {
    view, lanes, heights, bg,
    downbeatTicks: runs(down),
    beatTicks: runs(beat),
    sectionColours,
  };
}
"""


def visualizer_stats(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => {
      const c = document.getElementById("visualizer");
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      const colours = new Set();
      for (let i = 0; i < d.length; i += 4 * 97) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      const mid = ((c.height >> 1) * c.width + (c.width >> 1)) * 4;
      return { distinct: colours.size, centre: [d[mid], d[mid + 1], d[mid + 2]],
               beat: Number(c.dataset.beat), bar: Number(c.dataset.bar), section: c.dataset.section };
    }"""
    )


def canvas_hash(page: Any, element_id: str) -> str:
    data = page.evaluate(
        """(id) => { const c = document.getElementById(id);
          return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 7 === 0)).join(","); }""",
        element_id,
    )
    return hashlib.sha256(data.encode()).hexdigest()


def audio_time(page: Any) -> float:
    return float(page.evaluate("() => document.getElementById('audio').currentTime"))


def test_upload_progress_drawing_playback_downloads_reload(
    service: Service, server: str, browser: Any, track: Path
) -> None:
    page = new_page(browser)
    # Record every value the progress bar shows, from the first one on.
    page.add_init_script(
        """window.__progress = [];
        new MutationObserver((ms) => ms.forEach((m) => {
          if (m.attributeName === "aria-valuenow") window.__progress.push(Number(m.target.getAttribute("aria-valuenow")));
        })).observe(document, { attributes: true, subtree: true, attributeFilter: ["aria-valuenow"] });"""
    )
    open_page(page, server + "/")
    assert page.locator("#upload-view").is_visible()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
    page.set_input_files("#file", str(track))
    assert page.locator("#file-name").inner_text() == track.name

    page.wait_for_selector("#result-view:not([hidden])", timeout=90_000)
    progress = page.evaluate("() => window.__progress")
    assert 100 in progress, progress
    assert page.locator("#progress-bar").get_attribute("aria-valuenow") == "100"
    m = re.fullmatch(r".*/a/([A-Za-z0-9_-]+)", page.url)
    assert m, page.url
    job_id = m.group(1)
    # Progress came over the event stream, not by polling the job.
    assert f"GET {server}/api/v1/analyses/{job_id}/events" in requests
    assert f"GET {server}/api/v1/analyses/{job_id}" not in requests

    job = service.job(job_id)  # read through the harness: checked against the OpenAPI document
    assert job["status"] == "done" and job["filename"] == track.name
    analysis = page.request.get(f"{server}/api/v1/analyses/{job_id}/analysis?format=spotify").json()
    fb = analysis["featherbeat"]
    # The page is only as good as what it draws: a 120 BPM drum track must have its beats.
    assert len(analysis["beats"]) >= 40 and analysis["track"]["tempo"] > 0, (
        "the analysis found no pulse in a 120 BPM drum track: a regression in the analysis, "
        f"not in the page: {analysis['track']} {fb['missing']}"
    )

    # The summary says what the analysis says.
    summary = page.locator("#summary").inner_text()
    assert f"{analysis['track']['tempo']:.1f} BPM" in summary
    assert f"{len(analysis['beats'])} beats" in summary
    assert f"{len(analysis['sections'])} sections" in summary
    key = f"{fb['key_name']} {fb['mode_name']}".strip() if fb["key_name"] else "unknown"
    terms = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#summary > div')].map(
             (d) => [d.querySelector('dt').textContent, d.querySelector('dd').firstChild.textContent]))"""
    )
    assert terms["Key"] == key
    assert terms["Time signature"] == f"{analysis['track']['time_signature']}/4"
    assert page.locator("#result-title").inner_text() == track.name

    # The drawing, read back pixel by pixel and compared with the JSON.
    px = page.evaluate(MEASURE_JS, [analysis])
    view, lanes, heights = px["view"], px["lanes"], px["heights"]
    assert view["start"] == 0 and abs(view["span"] - analysis["track"]["duration"]) < 0.1
    lane_h = lanes["waveform"][1] - lanes["waveform"][0]
    wf = fb["waveform"]
    peak = np.maximum(np.abs(np.asarray(wf["min"])), np.abs(np.asarray(wf["max"])))
    # Each pixel column shows every bucket that overlaps it in time.
    px_per_bucket = view["width"] / view["span"] / wf["rate"]
    edges = np.arange(peak.size + 1) * px_per_bucket
    col_peak = np.zeros(view["width"])
    for i, p in enumerate(peak):
        a, b = int(edges[i]), min(view["width"], int(np.ceil(edges[i + 1])))
        col_peak[a:b] = np.maximum(col_peak[a:b], p)
    h = np.asarray(heights, dtype=float)
    col_peak /= col_peak.max()  # the page scales the waveform to the track's peak
    loud_cols, quiet_cols = col_peak > 0.6, col_peak < 0.2
    assert loud_cols.sum() > 10 and quiet_cols.sum() > 10
    assert np.median(h[loud_cols]) > 0.5 * lane_h  # loud hits are drawn tall ...
    assert np.median(h[quiet_cols]) < 0.25 * lane_h  # ... the gaps between them low
    assert np.corrcoef(h, col_peak)[0, 1] > 0.8

    x_of = lambda t: (t - view["start"]) / view["span"] * view["width"]  # noqa: E731
    downbeats = [t for t in fb["downbeats"] if x_of(t) < view["width"] - 2]
    others = [
        b["start"]
        for b in analysis["beats"]
        if round(b["start"], 3) not in {round(d, 3) for d in fb["downbeats"]}
        and x_of(b["start"]) < view["width"] - 1
    ]
    assert len(downbeats) >= 8 and len(others) >= 20
    assert abs(len(px["downbeatTicks"]) - len(downbeats)) <= 1
    assert abs(len(px["beatTicks"]) - len(others)) <= 1
    for t in downbeats[:5]:  # each downbeat tick sits where the JSON says
        assert min(abs(x - x_of(t)) for x in px["downbeatTicks"]) <= 2.5

    colours = [tuple(c) for c in px["sectionColours"]]
    labels = fb["section_labels"]
    assert len(labels) == len(colours) == len(analysis["sections"]) >= 1
    for la, ca in zip(labels, colours, strict=True):
        assert ca != tuple(px["bg"])  # every section is painted
        for lb, cb in zip(labels, colours, strict=True):
            assert (la[0] == lb[0]) == (ca == cb), (labels, colours)

    viz = visualizer_stats(page)
    assert viz["distinct"] > 20  # a picture, not a blank rectangle

    # Hovering the drawing names the bar, beat and section under the pointer.
    box = page.locator("#track-canvas").bounding_box()
    t_hover = downbeats[2] + 0.01
    page.mouse.move(box["x"] + x_of(t_hover), box["y"] + 100)
    hover = page.locator("#hover")
    hover.wait_for(state="visible")
    assert "bar 3, beat 1" in hover.inner_text()
    sec = [i for i, x in enumerate(analysis["sections"]) if x["start"] <= t_hover]
    assert f"section {labels[sec[-1]]}" in hover.inner_text()
    page.mouse.move(box["x"] + 10, box["y"] - 40)  # leaving the canvas hides it
    hover.wait_for(state="hidden")

    # Playback of the just-uploaded File; the cursor and the visualizer follow.
    assert page.locator("#play").is_enabled()
    page.click("#play")
    page.wait_for_function(
        "() => document.getElementById('audio').currentTime > 1.2", timeout=15_000
    )
    assert page.locator("#play").get_attribute("aria-label") == "Pause"
    page.click("#play")
    page.wait_for_function("() => document.getElementById('audio').paused")
    paused_at = audio_time(page)
    page.wait_for_timeout(400)
    assert audio_time(page) == paused_at
    # The visualizer's frame is the moment playback stopped: same beat, bar and section as the JSON.
    viz = visualizer_stats(page)
    beat_starts = [b["start"] for b in analysis["beats"]]
    assert viz["beat"] == int(np.searchsorted(beat_starts, paused_at, side="right")) - 1 >= 1
    assert viz["bar"] == int(np.searchsorted(fb["downbeats"], paused_at, side="right"))
    here = [s for s in analysis["sections"] if s["start"] <= paused_at < s["start"] + s["duration"]]
    assert viz["section"] == labels[analysis["sections"].index(here[0])]
    assert page.locator("#play").get_attribute("aria-label") == "Play"
    cursor_x = page.evaluate("() => document.getElementById('cursor').style.transform")
    assert cursor_x != "translateX(0px)"

    # Keyboard: arrows seek, space toggles.
    page.locator("#result-title").click()
    page.keyboard.press("ArrowRight")
    assert audio_time(page) == pytest.approx(paused_at + 5, abs=0.3)
    page.keyboard.press("Space")
    page.wait_for_function("() => !document.getElementById('audio').paused")
    page.keyboard.press("Space")
    page.wait_for_function("() => document.getElementById('audio').paused")

    # Zoom in: the drawing changes and the view is narrower; Fit brings it back.
    before = canvas_hash(page, "track-canvas")
    page.click("#zoom-in")
    zoomed = json.loads(page.locator("#track-canvas").get_attribute("data-view"))
    assert zoomed["span"] == pytest.approx(view["span"] / 2, rel=0.01)
    assert canvas_hash(page, "track-canvas") != before
    # Scroll: click near the end of the overview strip, then step back with the keyboard.
    ov = page.locator("#overview-canvas").bounding_box()
    page.mouse.click(ov["x"] + ov["width"] - 3, ov["y"] + ov["height"] / 2)
    scrolled = json.loads(page.locator("#track-canvas").get_attribute("data-view"))
    assert scrolled["start"] + scrolled["span"] == pytest.approx(view["span"], abs=0.01)
    page.focus("#overview-canvas")
    page.keyboard.press("ArrowLeft")
    stepped = json.loads(page.locator("#track-canvas").get_attribute("data-view"))
    assert stepped["start"] == pytest.approx(scrolled["start"] - scrolled["span"] / 4, abs=0.01)
    page.click("#zoom-fit")
    assert canvas_hash(page, "track-canvas") == before
    assert page.locator("#message").is_hidden()

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-result.png"), full_page=True)

    # Downloads are exactly what the API serves.
    for fmt in ("spotify", "beats", "jams"):
        with page.expect_download() as info:
            page.click(f"#dl-{fmt}")
        got = Path(info.value.path()).read_bytes()
        want = page.request.get(f"{server}/api/v1/analyses/{job_id}/analysis?format={fmt}").body()
        assert got == want, fmt
        assert info.value.suggested_filename.startswith("drums-120bpm.")
    assert page.locator("#share-link").input_value() == page.url

    # A reload of /a/{id} shows the same result, drawn the same.
    summary_before = summary
    page.reload()
    page.wait_for_selector("#result-view:not([hidden])", timeout=15_000)
    assert page.locator("#summary").inner_text() == summary_before
    assert canvas_hash(page, "track-canvas") == before
    # The File is gone with the reload: the page now plays the server's copy (links.audio).
    src = page.evaluate("() => document.getElementById('audio').src")
    assert src == f"{server}/api/v1/analyses/{job_id}/audio"
    page.wait_for_function("() => !document.getElementById('play').disabled", timeout=15_000)
    page.click("#play")
    page.wait_for_function("() => document.getElementById('audio').currentTime > 0.3")
    page.click("#play")

    # A phone-sized screen: nothing sticks out sideways and the drawing is redrawn to fit.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function(
        "() => JSON.parse(document.getElementById('track-canvas').dataset.view).width < 390"
    )
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert page.locator("#play").is_visible() and page.locator("#dl-jams").is_visible()
    page.set_viewport_size({"width": 1200, "height": 1100})

    # The upload view lists it among this browser's recent analyses.
    page.click(".brand")
    page.wait_for_selector("#upload-view:not([hidden])")
    link = page.locator(f"#recent-list a[href='/a/{job_id}']")
    assert link.inner_text() == track.name

    # Delete it from the server (after a confirmation): gone from the API and from the list.
    link.click()
    page.wait_for_selector("#result-view:not([hidden])")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")
    page.wait_for_selector("#upload-view:not([hidden])")
    assert "was deleted" in page.locator("#message").inner_text()
    assert page.locator(f"#recent-list a[href='/a/{job_id}']").count() == 0
    assert page.request.get(f"{server}/api/v1/analyses/{job_id}").status == 404
    assert page.errors == []


def test_text_file_is_refused_with_a_clear_message(
    server: str, browser: Any, tmp_path: Path
) -> None:
    page = new_page(browser, color_scheme="dark")
    open_page(page, server + "/")
    # Dark scheme: a dark page with light text.
    bg, fg = page.evaluate(
        """() => [getComputedStyle(document.documentElement).backgroundColor,
                  getComputedStyle(document.body).color]"""
    )
    luminance = lambda css: sum(map(int, re.findall(r"\d+", css)[:3])) / 3  # noqa: E731
    assert luminance(bg) < 60 < 180 < luminance(fg), (bg, fg)
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list: eggs, milk\n" * 40)
    # Dropped on the box, as a person would drag it from their file manager.
    transfer = page.evaluate_handle(
        """(text) => { const dt = new DataTransfer();
          dt.items.add(new File([text], "notes.txt", { type: "text/plain" })); return dt; }""",
        notes.read_text(),
    )
    page.dispatch_event("#drop", "dragover", {"dataTransfer": transfer})
    assert "over" in page.locator("#drop").get_attribute("class")
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    assert page.locator("#file-name").inner_text() == "notes.txt"
    msg = page.locator("#message")
    msg.wait_for(state="visible")
    assert "does not look like audio" in msg.inner_text()
    assert page.locator("#upload-view").is_visible()

    # Named like audio, so the page lets it through: the server refuses it and we say so.
    disguised = tmp_path / "notes.mp3"
    disguised.write_bytes(notes.read_bytes())
    page.set_input_files("#file", str(disguised))
    page.wait_for_function(
        "() => document.getElementById('message').textContent.includes('refused')", timeout=15_000
    )
    assert page.locator("#upload-view").is_visible()
    assert "notes.mp3" in msg.inner_text()
    assert msg.inner_text().count("notes.mp3") == 1, msg.inner_text()  # issue 10.7: said once
    assert page.url.rstrip("/") == server
    assert page.errors == []


def test_token_size_limit_and_polling_without_event_stream(
    browser: Any, track: Path, tmp_path: Path
) -> None:
    """A server that wants a token and takes at most 0.5 MB, seen by a browser whose
    EventSource is unavailable (as behind a buffering proxy): the page must fall back to
    polling GET /api/v1/analyses/{id}."""
    env = {"FEATHERBEAT_API_TOKEN": "s3cret-token", "FEATHERBEAT_MAX_UPLOAD_MB": "0.5"}
    with running_service(tmp_path / "svc", env) as svc:
        url = svc.base_url
        page = new_page(browser)
        page.add_init_script("delete window.EventSource;")
        requests: list[str] = []
        page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
        open_page(page, url + "/")
        assert page.locator("#token-box").is_visible()  # /api/v1/config says auth_required

        # Too big for this server: said before any byte is sent.
        page.set_input_files("#file", str(track))
        msg = page.locator("#message")
        msg.wait_for(state="visible")
        assert "too big" in msg.inner_text() and track.name in msg.inner_text()

        # Small enough, but no token yet: the server's 401 becomes a request for the token.
        small = tmp_path / "short.flac"
        data, sr = sf.read(track)
        sf.write(small, data[: 6 * sr], sr)
        transfer = page.evaluate_handle(  # dropped, not picked: the drag-and-drop path
            """([b64, name]) => { const dt = new DataTransfer();
              const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
              dt.items.add(new File([bytes], name, { type: "audio/flac" })); return dt; }""",
            [base64.b64encode(small.read_bytes()).decode(), small.name],
        )
        page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
        page.wait_for_function(
            "() => document.getElementById('message').textContent.includes('API token')"
        )
        assert page.evaluate("() => document.activeElement.id") == "token"

        # Entering the token uploads the same file again; progress comes from polling. The
        # field is a password field in a form (issue 10.8), so Enter commits it.
        assert page.locator("form#token-box input#token[type=password]").count() == 1
        page.fill("#token", "s3cret-token")
        page.keyboard.press("Enter")
        page.wait_for_selector("#result-view:not([hidden])", timeout=60_000)
        job_id = page.url.rsplit("/", 1)[1]
        assert f"GET {url}/api/v1/analyses/{job_id}" in requests  # polled instead
        assert not any(r.endswith("/events") for r in requests)
        assert page.locator("#progress-bar").get_attribute("aria-valuenow") == "100"
        assert page.locator("#result-title").inner_text() == small.name
        assert page.evaluate("() => localStorage.getItem('featherbeat.token')") == '"s3cret-token"'
        job = svc.job(job_id)
        assert job["status"] == "done" and job["size_bytes"] == small.stat().st_size

        # This server does not keep uploads: after a reload the page says how to get sound,
        # without asking for the audio first (issue 10.8: that logged a red 410).
        requests.clear()
        page.reload()
        page.wait_for_selector("#result-view:not([hidden])", timeout=15_000)
        note = page.locator("#audio-note")
        note.wait_for(state="visible")
        assert "no longer keeps the audio" in note.inner_text()
        assert page.locator("#play").is_disabled()
        assert not [r for r in requests if r.endswith("/audio")], requests
        # The way to sound is a styled control beside the player, not a bare native button.
        own = page.locator(".player #own-copy")
        assert own.is_visible() and "Play your own copy" in own.inner_text()
        assert own.bounding_box()["height"] >= 30
        assert page.locator("#local-file").bounding_box()["width"] <= 1  # hidden in its label
        page.set_input_files("#local-file", str(small))  # ... and playing your own copy works
        page.wait_for_function("() => !document.getElementById('play').disabled")
        page.click("#play")
        page.wait_for_function("() => document.getElementById('audio').currentTime > 0.3")
        page.click("#play")

        # An id the server does not know: a message, and back to the upload view.
        open_page(page, url + "/a/no-such-job")
        assert page.locator("#upload-view").is_visible()
        assert "no analysis no-such-job" in page.locator("#message").inner_text()

        # With the consumer stopped a new upload waits in the queue; Cancel deletes it.
        svc.stop_worker()
        waiting = tmp_path / "waiting.flac"
        sf.write(waiting, data[: 4 * sr], sr)
        page.set_input_files("#file", str(waiting))
        page.wait_for_function(
            "() => document.getElementById('progress-stage').textContent.includes('next in line')"
        )
        waiting_id = page.url.rsplit("/", 1)[1]
        assert svc.job(waiting_id)["queue_position"] == 1
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#cancel")
        page.wait_for_selector("#upload-view:not([hidden])")
        assert "was cancelled" in page.locator("#message").inner_text()
        assert svc.request("GET", f"/api/v1/analyses/{waiting_id}")[0] == 404

        # The web side goes away while a job waits: the page says it lost contact, keeps
        # trying, and carries on to the result once web and consumer are back.
        page.set_input_files("#file", str(waiting))
        page.wait_for_function(
            "() => document.getElementById('progress-stage').textContent.includes('next in line')"
        )
        svc.stop_web()
        page.wait_for_function(
            "() => document.getElementById('message').textContent.includes('Lost contact')",
            timeout=20_000,
        )
        svc.start_web()
        svc.start_worker()
        page.wait_for_selector("#result-view:not([hidden])", timeout=60_000)
        assert page.locator("#message").is_hidden()
        assert page.locator("#result-title").inner_text() == waiting.name
        assert page.errors == []


def test_empty_cut_short_and_constant_files(
    service: Service, server: str, browser: Any, track: Path, tmp_path: Path
) -> None:
    """Issue 10: what a first-time user tripped over on the page. An empty file is refused
    before any request; a file cut short says so above its result; a constant level (no
    pulse, no pitch, no sound) is not drawn as a solid bar, full pitch stripes or 4/4; the
    visualizer says what it is while paused."""
    import struct

    page = new_page(browser)
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
    open_page(page, server + "/")

    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    page.set_input_files("#file", str(empty))
    msg = page.locator("#message")
    msg.wait_for(state="visible")
    assert "empty.mp3 is empty" in msg.inner_text()
    page.wait_for_timeout(300)
    assert failed == [] and not [r for r in requests if r.startswith("POST")], (failed, requests)

    # The drum track with a WAV header that claims an hour: analysed, and said to be cut.
    data = bytearray(track.read_bytes())
    at = data.find(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", 3600 * 22050 * 2)
    cut = tmp_path / "cut-short.wav"
    cut.write_bytes(bytes(data))
    page.set_input_files("#file", str(cut))
    page.wait_for_selector("#result-view:not([hidden])", timeout=90_000)
    warning = page.locator("#result-warning")
    assert warning.is_visible() and "cut short" in warning.inner_text(), warning.inner_text()
    assert "header says" in warning.inner_text()

    # Five seconds of one constant level.
    sr = 22050
    level = tmp_path / "constant.wav"
    sf.write(level, np.full(5 * sr, 0.5, dtype=np.float32), sr, subtype="PCM_16")
    page.click(".brand")
    page.wait_for_selector("#upload-view:not([hidden])")
    page.set_input_files("#file", str(level))
    page.wait_for_function(
        "() => document.getElementById('result-title').textContent === 'constant.wav'"
        " && !document.getElementById('result-view').hidden",
        timeout=90_000,
    )
    assert page.locator("#result-warning").is_hidden()
    terms = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#summary > div')].map(
             (d) => [d.querySelector('dt').textContent, d.querySelector('dd').firstChild.textContent]))"""
    )
    assert terms["Tempo"] == "no pulse" and terms["Time signature"] == "none", terms
    ink = page.evaluate(
        """() => {
      const lanes = JSON.parse(document.getElementById("track-canvas").dataset.lanes);
      const probe = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
      const rgb = (name) => {
        probe.fillStyle = getComputedStyle(document.body).getPropertyValue(name).trim();
        probe.fillRect(0, 0, 1, 1);
        return Array.from(probe.getImageData(0, 0, 1, 1).data.slice(0, 3));
      };
      const dist = (d, i, c) => Math.abs(d[i] - c[0]) + Math.abs(d[i + 1] - c[1]) + Math.abs(d[i + 2] - c[2]);
      // Share of the pixels in rows y0..y1 that `hit` picks out.
      const share = (id, y0, y1, hit) => {
        const c = document.getElementById(id);
        const dpr = c.width / c.clientWidth;
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let n = 0, all = 0;
        for (let y = Math.round(y0 * dpr); y < Math.round(y1 * dpr); y++)
          for (let x = 0; x < c.width; x += 3) {
            all++;
            if (hit(d, (y * c.width + x) * 4)) n++;
          }
        return n / all;
      };
      const bg = rgb("--canvas-bg"), wave = rgb("--wave");
      const ov = document.getElementById("overview-canvas");
      return {
        pitch: share("track-canvas", lanes.pitch[0] + 1, lanes.pitch[1] - 1, (d, i) => dist(d, i, bg) > 120),
        overview: share("overview-canvas", 3, ov.clientHeight - 3, (d, i) => dist(d, i, wave) < 60),
      };
    }"""
    )
    # Was: twelve full-strength pitch stripes and an overview painted solid wave colour.
    assert ink["pitch"] < 0.1 and ink["overview"] < 0.2, ink
    viz = page.locator("#visualizer")
    assert viz.get_attribute("data-playing") == "0"
    assert page.locator("#visualizer-caption").is_visible()
    assert page.errors == []


def test_page_modules_pure_functions(server: str, browser: Any) -> None:
    """The page's pure helpers, run as the browser loads them (ES modules from /assets/)."""
    page = new_page(browser)
    open_page(page, server + "/")
    got = page.evaluate(
        """async () => {
      const m = await import("/assets/js/model.js");
      const f = await import("/assets/js/format.js");
      // Spotify's own JSON has no "featherbeat" key: downbeats then come from bars.
      const spotify = {
        track: { duration: 10, tempo: 120, time_signature: 4 },
        beats: [0.5, 1, 1.5, 2, 2.5].map((s) => ({ start: s, duration: 0.5, confidence: 1 })),
        bars: [{ start: 0.5, duration: 2, confidence: 1 }, { start: 2.5, duration: 2, confidence: 1 }],
        sections: [{ start: 0, duration: 2 }, { start: 2, duration: 8 }],
        segments: [{ start: 0, duration: 10, loudness_max: -10, pitches: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5] }],
      };
      const model = m.buildModel(spotify);
      const at = m.momentAt(model, 1.6);
      return {
        last: [m.lastAtOrBefore([1, 2, 3], 0.5), m.lastAtOrBefore([1, 2, 3], 2), m.lastAtOrBefore([1, 2, 3], 9)],
        smooth: Array.from(m.smooth(Float32Array.from([0, 0, 3, 0, 0]), 3)),
        sameHue: m.labelHue("A", 0) === m.labelHue("A'", 5),
        otherHue: m.labelHue("A", 0) !== m.labelHue("B", 1),
        isDownbeat: Array.from(model.isDownbeat),
        labels: model.sections.map((s) => s.label),
        pitch11: model.segments.pitches[11],
        at: { beat: at.beatIndex, bar: at.barNumber, section: at.section.label, since: at.sinceBeat },
        times: [f.formatTime(3723), f.formatTime(59.9), f.formatTime(NaN)],
        bytes: [f.formatBytes(999), f.formatBytes(1500000), f.formatBytes(104857600)],
        keys: [f.keyName(6, 1), f.keyName(9, 0), f.keyName(-1, -1)],
        keyConf: [f.keyConfidence(0.9), f.keyConfidence(0.6), f.keyConfidence(0.2), f.keyConfidence(NaN)],
      };
    }"""
    )
    assert got["last"] == [-1, 1, 2]
    assert got["smooth"] == [0, 1, 1, 1, 0]
    assert got["sameHue"] and got["otherHue"]
    assert got["isDownbeat"] == [1, 0, 0, 0, 1]
    assert got["labels"] == ["A", "B"]  # letters stand in when section_labels are absent
    assert got["pitch11"] == 0.5
    assert got["at"] == {"beat": 2, "bar": 1, "section": "A", "since": pytest.approx(0.1)}
    assert got["times"] == ["1:02:03", "0:59", "–"]
    assert got["bytes"] == ["999 B", "1.4 MB", "100 MB"]  # as the server's limit says it
    assert got["keys"] == ["F# major", "A minor", "unknown"]
    assert got["keyConf"] == [
        "confidence 90 % · clear",
        "confidence 60 % · probable",
        "confidence 20 % · uncertain, may be a related key",
        "",
    ]
    assert page.errors == []
