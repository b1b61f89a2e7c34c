"""The web page (GET /), driven in headless Chromium through Playwright against a real
server: text search, a video's moment played in place, image queries (upload, drop,
more like this), generate on miss, an index job with a corrupt file, the API key, and the
library before any search: its timeline, filters, places and duplicate groups.

Each test saves a screenshot under $MMSEARCH_TEST_ARTIFACTS/web (default tests/artifacts/web)."""

from __future__ import annotations

import base64
import contextlib
import os
import re
from pathlib import Path

import httpx
import pytest
import torch

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from mmsearch.datasets import synth
from mmsearch.evaluation.video_eval import iou

from ..helpers import make_corpus, open_library, paths_with
from ..photos import DATED_NEWEST_FIRST, DUPLICATE_GROUPS, make_duplicate_library, make_photo_library

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,  # builds libraries and drives a browser
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="browser tests need Debian's chromium at /usr/bin/chromium (.ci/run installs it)"
    ),
]

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402  (after the skip: a clear reason first)

ARTIFACTS = (
    Path(os.environ["MMSEARCH_TEST_ARTIFACTS"]) / "web"
    if os.environ.get("MMSEARCH_TEST_ARTIFACTS")
    else Path(__file__).resolve().parents[1] / "artifacts" / "web"
)
VIDEO_SEED = 21  # three clips; the third has two shots, the second starting at ~1.1 s
SLOW = 60_000  # ms: for steps that run models (search, generation, indexing) on a busy CPU

expect.set_options(timeout=20_000)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The models here are tiny; two threads fighting other work for two cores run them
    ~40x slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, mini_encoder):
    """40 images and 3 videos, default settings: the library of tests 1-3."""
    base = tmp_path_factory.mktemp("web")
    photos, clips = base / "photos", base / "clips"
    make_corpus(photos, n=40)
    manifest = synth.generate(clips, 0, 3, seed=VIDEO_SEED, split="train")
    lib = open_library(base / "lib", encoder=mini_encoder)
    summary = lib.index([photos, clips])
    assert summary["state"] == "done" and summary["errors"] == 0
    with BackgroundServer(create_app(lib)) as server:
        yield server.url, photos, clips, manifest
    lib.close()


@pytest.fixture(scope="module")
def miss_site(tmp_path_factory, mini_encoder):
    """Every text query misses (no score reaches 0.99, no prior score 1.0) and the built-in
    generator draws in 3 steps: the library of the generation and index-job tests."""
    base = tmp_path_factory.mktemp("webgen")
    make_corpus(base / "photos", n=12, seed=5)
    lib = open_library(
        base / "lib",
        encoder=mini_encoder,
        generator="mini",
        miss_threshold=0.99,
        prior_miss_threshold=1.0,
        generate_steps=3,
        index_roots=[tmp_path_factory.getbasetemp()],  # POST /jobs: the tests' folders
    )
    lib.index([base / "photos"])
    with BackgroundServer(create_app(lib)) as server:
        yield server.url, base
    lib.close()


@contextlib.contextmanager
def _opened(browser, url: str):
    """The page in a fresh browser context, ready; any JavaScript error on it fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        yield page
    finally:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser, site):
    with _opened(browser, site[0]) as page:
        yield page


@pytest.fixture
def miss_page(browser, miss_site):
    with _opened(browser, miss_site[0]) as page:
        yield page


def _screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _search(page: Page, text: str, kind: str) -> None:
    page.get_by_label("Kind of media").select_option(kind)
    page.get_by_label("Search text").fill(text)
    page.get_by_role("button", name="Search", exact=True).click()


def _paths(results, n: int) -> list[str]:
    return [results.nth(i).get_attribute("data-path") for i in range(n)]


def test_text_search_shows_the_matching_thumbnails_and_pages(page, site):
    _, photos, _, _ = site
    _search(page, "something red", "image")
    results = page.get_by_test_id("result")
    expect(results).to_have_count(12, timeout=SLOW)  # one page
    top3 = _paths(results, 3)
    assert set(top3) <= paths_with(photos, color="red")
    for i, path in enumerate(top3):
        card = results.nth(i)
        expect(card.get_by_test_id("path")).to_have_text(path)
        expect(card.get_by_test_id("thumbnail")).to_have_attribute("alt", path)
        expect(card.get_by_test_id("score")).to_have_text(f"{float(card.get_attribute('data-score')):.3f}")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=result] img')].slice(0, 3)"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )  # the thumbnails really loaded
    expect(page.get_by_test_id("search-summary")).to_contain_text("12 results for “something red” · via text")

    page.get_by_test_id("load-more").click()
    expect(results).to_have_count(24, timeout=SLOW)
    ids = [results.nth(i).get_attribute("data-id") for i in range(24)]
    scores = [float(results.nth(i).get_attribute("data-score")) for i in range(24)]
    kinds = {results.nth(i).get_attribute("data-kind") for i in range(24)}
    assert len(set(ids)) == 24 and scores == sorted(scores, reverse=True) and kinds == {"image"}
    assert _paths(results, 3) == top3  # the first page stays put
    expect(results.nth(12).get_by_test_id("open")).to_be_focused()  # keyboard users land on the new page
    summary = page.get_by_test_id("search-summary")
    expect(summary).to_contain_text("24 results")
    # Whether the query missed is page 1's answer (later pages score lower by nature).
    first_page = httpx.post(f"{site[0]}/search", json={"text": "something red", "kind": "image", "k": 12}).json()
    expect(summary).to_have_attribute("data-miss", str(first_page["miss"]).lower())
    _screenshot(page, "1-text-search")


def test_a_video_hit_plays_its_moment_in_place(page, site):
    _, _, clips, manifest = site
    item = next(i for i in manifest["items"] if len(i["shots"]) >= 2)
    shot = item["shots"][-1]
    _search(page, shot["caption"], "video")
    first = page.get_by_test_id("result").first
    expect(first).to_have_attribute("data-path", str((clips / item["file"]).resolve()), timeout=SLOW)
    # Before: a correct video hit was flagged "No close match" (a flat threshold for every kind).
    expect(page.get_by_test_id("search-summary")).to_have_attribute("data-miss", "false")
    expect(page.get_by_test_id("miss-note")).to_be_hidden()
    media_id = first.get_attribute("data-id")
    t_start, t_end = float(first.get_attribute("data-t-start")), float(first.get_attribute("data-t-end"))
    assert t_start > 0.5 and iou((t_start, t_end), (shot["t_start"], shot["t_end"])) >= 0.5
    expect(first.get_by_test_id("moment")).to_have_text(f"moment {t_start:.1f}–{t_end:.1f} s")
    # The thumbnail is a frame of the moment.
    thumb = first.get_by_test_id("thumbnail")
    expect(thumb).to_have_attribute("src", re.compile(rf"^/media/{media_id}/thumbnail\?t=[0-9.]+$"))
    assert t_start <= float(thumb.get_attribute("src").split("=")[1]) <= t_end
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())

    first.get_by_test_id("open").focus()
    page.keyboard.press("Enter")  # keyboard: Enter plays
    player = first.get_by_test_id("player")
    video = first.get_by_test_id("video")
    expect(player).to_have_attribute("data-state", re.compile("^(playing|moment-end)$"))
    assert float(player.get_attribute("data-seeked-time")) == pytest.approx(t_start, abs=1e-3)
    assert video.get_attribute("src") == f"/media/{media_id}/file"
    now = video.evaluate("v => v.currentTime")
    assert t_start <= now <= t_end
    duration = video.evaluate("v => v.duration")
    assert duration == pytest.approx(item["duration"], abs=0.05)
    bar = first.get_by_test_id("moment-bar").evaluate("b => [parseFloat(b.style.left), parseFloat(b.style.width)]")
    assert bar == pytest.approx([100 * t_start / duration, 100 * (t_end - t_start) / duration], abs=0.01)
    _screenshot(page, "2-video-playing")

    # It stops at the end of the moment, still inside it.
    expect(player).to_have_attribute("data-state", "moment-end", timeout=int(1000 * (t_end - t_start)) + 15_000)
    paused, now = video.evaluate("v => [v.paused || v.ended, v.currentTime]")
    assert paused and t_start <= now <= t_end + 1e-3 and now == pytest.approx(t_end, abs=0.05)
    _screenshot(page, "2-video-moment-end")


def test_image_queries_upload_drop_and_more_like_this(page, site):
    _, photos, _, _ = site
    images = sorted(p for p in (photos / "images").iterdir() if p.suffix in (".png", ".jpg", ".jpeg", ".webp"))
    upload, dropped = images[0], images[7]
    results = page.get_by_test_id("result")

    page.get_by_label("Search by image").set_input_files(str(upload))
    expect(results.first).to_have_attribute("data-path", str(upload.resolve()), timeout=SLOW)
    assert float(results.first.get_attribute("data-score")) == pytest.approx(1.0, abs=2e-3)
    expect(page.get_by_test_id("query-preview").get_by_role("img")).to_have_attribute(
        "alt", f"query image {upload.name}"
    )
    expect(page.get_by_test_id("search-summary")).to_contain_text(f"for the image {upload.name} · via image")
    _screenshot(page, "3-image-upload")

    # Drop a file on the drop zone, as a file manager would.
    page.get_by_test_id("drop-zone").evaluate(
        """(zone, [b64, name]) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], name, {type: "image/png"}));
        for (const type of ["dragenter", "dragover", "drop"])
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""",
        [base64.b64encode(dropped.read_bytes()).decode(), dropped.name],
    )
    expect(results.first).to_have_attribute("data-path", str(dropped.resolve()), timeout=SLOW)
    assert float(results.first.get_attribute("data-score")) == pytest.approx(1.0, abs=2e-3)

    # More like this on the third result: it comes first, as its own nearest neighbour.
    third = results.nth(2)
    third_id, third_path = third.get_attribute("data-id"), third.get_attribute("data-path")
    third.get_by_test_id("more-like-this").click()
    expect(results.first).to_have_attribute("data-id", third_id, timeout=SLOW)
    assert float(results.first.get_attribute("data-score")) == pytest.approx(1.0, abs=2e-3)
    expect(page.get_by_test_id("search-summary")).to_contain_text(f"more like {Path(third_path).name} · via image")
    _screenshot(page, "3-more-like-this")


def test_generate_on_miss_shows_the_generated_badge_and_prompt_and_deletes(miss_page, miss_site):
    page, miss_url = miss_page, miss_site[0]
    results = page.get_by_test_id("result")
    toggle = page.get_by_label("Generate on miss")
    expect(toggle).not_to_be_checked()

    _search(page, "a green star", "image")  # toggle off: the nearest library items, marked as a miss
    expect(page.get_by_test_id("search-summary")).to_have_attribute("data-miss", "true", timeout=SLOW)
    expect(page.get_by_test_id("miss-note")).to_contain_text("Turn on “Generate on miss”")
    expect(results).to_have_count(12)
    expect(page.get_by_test_id("generated-badge")).to_have_count(0)

    toggle.check()
    page.get_by_role("button", name="Search", exact=True).click()
    first = results.first
    expect(first.get_by_test_id("generated-badge")).to_have_text("generated", timeout=SLOW)
    expect(results).to_have_count(1)  # n=1 image drawn
    expect(first).to_have_attribute("data-generated", "true")
    expect(first.get_by_test_id("prompt")).to_have_text("prompt: “a green star”")
    expect(first.get_by_test_id("thumbnail")).to_have_attribute("alt", "generated: a green star")
    expect(page.get_by_test_id("miss-note")).to_contain_text("generated a new image")
    expect(page.get_by_test_id("miss-note")).to_have_attribute("data-via", "generated")
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=result] img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )  # the generated image is served
    expect(page.get_by_test_id("load-more")).to_be_hidden()
    _screenshot(page, "4-generated")

    # Delete the drawing: it leaves the page and the library; the next miss draws anew.
    drawn = first.get_attribute("data-id")
    expect(page.get_by_test_id("delete-generated")).to_have_count(1)  # generated cards only
    first.get_by_test_id("delete-generated").click()
    expect(page.get_by_test_id("status")).to_have_text(
        "Deleted the generated image: the next search for its prompt that misses draws a new one.", timeout=SLOW
    )
    expect(results).to_have_count(0)
    assert httpx.get(f"{miss_url}/media/{drawn}").status_code == 404
    page.get_by_role("button", name="Search", exact=True).click()
    expect(results.first.get_by_test_id("generated-badge")).to_have_text("generated", timeout=SLOW)
    assert results.first.get_attribute("data-id") != drawn


def test_index_job_progress_and_errors(miss_page, miss_site):
    page = miss_page
    url, base = miss_site
    folder = base / "incoming"
    make_corpus(folder, n=6, seed=99)
    (folder / "bad.png").write_bytes(b"not an image")
    before = httpx.get(f"{url}/health").json()

    page.get_by_label("Folder path on the server").fill(str(folder))
    page.get_by_role("button", name="Index", exact=True).click()
    state = page.get_by_test_id("job-state")
    expect(state).to_have_text("done", timeout=SLOW)
    progress = page.get_by_test_id("job-progress")
    assert progress.evaluate("p => [p.value, p.max]") == [7, 7]  # 100 %
    expect(page.get_by_test_id("job-counts")).to_have_text("7 / 7")
    expect(page.get_by_test_id("job-details")).to_have_text("7 new · 0 changed · 0 deleted · 0 unchanged · 1 error")
    error = page.get_by_test_id("job-error")
    expect(error).to_have_count(1)
    expect(error).to_have_attribute("data-path", str((folder / "bad.png").resolve()))
    expect(error).to_contain_text("not an image or video")
    expect(page.get_by_test_id("status")).to_have_text(re.compile(r"^Indexing job \d+ done: 7 of 7 files, 1 error\.$"))
    # The header's count follows: 7 media rows (the bad file is recorded, with its error), 6 with vectors.
    expect(page.get_by_test_id("health")).to_have_attribute("data-media", str(before["media"] + 7))
    after = httpx.get(f"{url}/health").json()
    assert (after["media"], after["vectors"]) == (before["media"] + 7, before["vectors"] + 6)
    assert after["unreadable"] == before["unreadable"] + 1
    expect(page.get_by_test_id("health")).to_contain_text(
        f"{after['media'] - after['unreadable']} items indexed · {after['unreadable']} unreadable"
    )
    _screenshot(page, "5-index-job")

    page.get_by_label("Folder path on the server").fill(str(base / "no-such-folder"))
    page.get_by_role("button", name="Index", exact=True).click()
    expect(page.get_by_test_id("error")).to_have_text(
        f"Cannot start indexing: {base / 'no-such-folder'} is not a folder"
    )


KEY = "web-test-key-0123456789"


@pytest.fixture(scope="module")
def keyed_site(tmp_path_factory, mini_encoder):
    """A server that wants a key for reads too."""
    base = tmp_path_factory.mktemp("webkey")
    make_corpus(base / "photos", n=12, seed=6)
    lib = open_library(base / "lib", encoder=mini_encoder, api_keys=[KEY], protect_reads=True)
    lib.index([base / "photos"])
    with BackgroundServer(create_app(lib)) as server:
        yield server.url
    lib.close()


def test_api_key_travels_as_header_and_cookie_and_401_asks_for_it(browser, keyed_site):
    with _opened(browser, keyed_site) as page:
        seen: dict[str, dict] = {}
        page.on("request", lambda r: seen.setdefault(r.url.split("?")[0].replace(keyed_site, ""), r.all_headers()))

        # No key yet: the server refuses and the page says where to enter one.
        _search(page, "something red", "image")
        expect(page.get_by_test_id("error")).to_contain_text("An API key is needed: enter it under Settings → API key.")
        expect(page.get_by_label("API key")).to_be_focused()
        expect(page.get_by_test_id("result")).to_have_count(0)

        page.get_by_label("API key").fill(KEY)
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_test_id("status")).to_have_text("API key saved.")
        assert page.evaluate("localStorage.getItem('mmsearch_api_key')") == KEY
        assert {"name": "mmsearch_api_key", "value": KEY}.items() <= page.context.cookies()[0].items()

        seen.clear()
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.get_by_test_id("result")).to_have_count(12, timeout=SLOW)
        # Thumbnails are protected reads too: they load only because the cookie carries the key.
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=result] img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        assert seen["/search"]["x-api-key"] == KEY
        thumb = next(v for k, v in seen.items() if k.endswith("/thumbnail"))
        assert f"mmsearch_api_key={KEY}" in thumb["cookie"]
        _screenshot(page, "6-api-key")


@pytest.fixture(scope="module")
def photo_site(tmp_path_factory, mini_encoder):
    """The photo library of tests/photos.py (dates, cameras, places) and the planted
    duplicates, their scenes dated 2015 so that the photos lead the timeline."""
    base = tmp_path_factory.mktemp("webphotos")
    make_photo_library(base / "photos")
    make_duplicate_library(base / "copies")
    for path in (base / "copies").rglob("*.jpg"):
        os.utime(path, (SCENES_MTIME, SCENES_MTIME))
    lib = open_library(base / "lib", encoder=mini_encoder)
    lib.index([base / "photos", base / "copies"])
    with BackgroundServer(create_app(lib)) as server:
        yield server.url
    lib.close()


SCENES_MTIME = 1431000000  # 2015-05-07


def _timeline_names(page: Page) -> list[str]:
    cards = page.get_by_test_id("timeline").get_by_test_id("result")
    return [Path(p).name for p in cards.evaluate_all("cs => cs.map(c => c.dataset.path)")]


def test_the_page_opens_on_the_timeline_and_filters_narrow_it(browser, photo_site):
    with _opened(browser, photo_site) as page:
        timeline = page.get_by_test_id("timeline")
        expect(timeline).to_be_visible()
        expect(timeline.get_by_test_id("result")).to_have_count(23)  # 10 photos, 13 scenes and copies
        months = timeline.get_by_test_id("month")
        expect(months.first.get_by_role("heading")).to_have_text("March 2023")
        assert _timeline_names(page)[:7] == DATED_NEWEST_FIRST
        expect(months.last.get_by_role("heading")).to_have_text("May 2015")
        # What is known of a photo: on hover (its title) and in its details
        card = timeline.locator("[data-path$='canon_lisbon_2019.jpg']")
        assert "Camera: Canon EOS 5D" in card.get_attribute("title")
        expect(card.get_by_test_id("taken")).to_contain_text("2019-06-01 14:30 · Canon EOS 5D · Lisbon")
        card.get_by_text("Details").click()
        expect(card.get_by_test_id("details")).to_contain_text("Taken2019-06-01T14:30:00+01:00")
        _screenshot(page, "7-timeline")

        page.get_by_test_id("taken-after").fill("2020-01-01")
        page.get_by_test_id("taken-before").fill("2021-12-31")
        page.get_by_test_id("taken-before").dispatch_event("change")
        expect(timeline.get_by_test_id("result")).to_have_count(2)
        assert _timeline_names(page) == ["canon_lisbon_2021.jpg", "sony_2020.jpg"]
        expect(timeline.get_by_test_id("month")).to_have_count(2)

        page.get_by_test_id("clear-filters").click()
        expect(timeline.get_by_test_id("result")).to_have_count(23)
        porto = page.get_by_test_id("places").get_by_test_id("place-name").filter(has_text="Porto")
        porto.click()
        expect(page.get_by_test_id("place")).to_have_value(re.compile("Porto"))
        expect(timeline.get_by_test_id("result")).to_have_count(2)
        assert _timeline_names(page) == ["iphone.heic", "nikon_porto_2018.jpg"]
        # A search under the same filter finds only what the filter allows
        _search(page, "a photo", "any")
        expect(page.get_by_test_id("results").get_by_test_id("result")).to_have_count(2, timeout=SLOW)
        expect(timeline).to_be_hidden()
        page.get_by_test_id("show-timeline").click()
        expect(timeline.get_by_test_id("result")).to_have_count(2)
        _screenshot(page, "7-timeline-filtered")


def test_duplicate_groups_display_with_the_keeper_first(browser, photo_site):
    groups = httpx.get(f"{photo_site}/duplicates").json()["groups"]
    planted = [[Path(m["path"]).name for m in g["members"]] for g in groups]
    assert all(g in planted for g in DUPLICATE_GROUPS)
    with _opened(browser, photo_site) as page:
        page.get_by_test_id("find-duplicates").click()
        shown = page.get_by_test_id("duplicate-group")
        expect(shown).to_have_count(len(groups))
        expect(page.get_by_test_id("timeline")).to_be_hidden()
        for i, group in enumerate(groups):
            cards = shown.nth(i).get_by_test_id("result")
            expect(cards).to_have_count(len(group["members"]))
            assert cards.evaluate_all("cs => cs.map(c => Number(c.dataset.id))") == [m["id"] for m in group["members"]]
            expect(cards.first.get_by_test_id("keeper")).to_have_text("keep")
            expect(cards.nth(1).get_by_test_id("keeper")).to_have_count(0)
        expect(page.get_by_test_id("status")).to_contain_text(f"{len(groups)} groups of duplicates among 23 images")
        _screenshot(page, "8-duplicates")
