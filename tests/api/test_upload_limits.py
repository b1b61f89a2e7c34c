"""Query uploads bounded in memory and on disk: a huge image is decoded at the model's scale
under a process-wide decode budget (503 when it stays spent), and a body over the limit is
refused while it streams in, with nothing left in the temp folder."""

import base64
import io
import json
import os
import re
import socket
import struct
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from mmsearch.api import uploads
from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from mmsearch.imageio import PIL_BLOCK_BYTES, decode_rgb, load_rgb, open_image, peak_bytes
from mmsearch.indexer.decode import DEFAULT_MAX_SIDE

from ..helpers import make_corpus, open_library

LIMIT = 1024 * 1024  # max_upload_bytes of the served library
MiB = 1024 * 1024


def png_solid(width: int, height: int, rgb=(200, 30, 30)) -> bytes:
    """A one-colour RGB PNG, written row by row: 9000x9000 is ~250 KB and never ~240 MB in memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = b"\x00" + bytes(rgb) * width
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def encoded(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


# -- decoding at the model's scale (no server) -----------------------------------------------


def test_the_query_scale_is_the_index_scale():
    assert uploads.QUERY_MAX_SIDE == DEFAULT_MAX_SIDE == 512


def test_a_huge_png_comes_back_at_the_query_scale():
    im = uploads.decode_query_image(png_solid(9000, 9000), 100_000_000)
    assert (im.mode, im.size) == ("RGB", (512, 512))
    assert im.getextrema() == ((200, 200), (30, 30), (30, 30))


def test_a_jpeg_is_drafted_before_it_is_decoded():
    big = encoded(Image.new("RGB", (6000, 4000), (10, 120, 240)), "JPEG", quality=90)
    drafted = open_image(big, draft_side=512)
    assert drafted.size == (1500, 1000)  # scaled by 4 in the decoder: both sides stay >= 512
    assert peak_bytes(drafted, 512) == 1500 * 1000 * 8  # decoded, and converted whole
    assert peak_bytes(open_image(png_solid(9000, 9000)), 512) == 9000 * 9000 * 4  # reduced in bands
    im = load_rgb(drafted, max_side=512)
    assert (im.mode, im.size) == ("RGB", (768, 512))


def test_exif_orientation_is_applied_after_shrinking():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im = Image.new("RGB", (4000, 2000), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 2000, 2000))  # left half white: on top once displayed
    shown = decode_rgb(encoded(im, "JPEG", exif=exif.tobytes()), max_side=512)
    assert shown.size == (512, 1024)
    assert shown.getpixel((256, 100)) > (240, 240, 240) and shown.getpixel((256, 900)) < (15, 15, 15)


@pytest.mark.parametrize("size", [(4000, 2000), (600, 300)], ids=["shrunk", "kept"])
def test_a_decoded_image_is_upright_once_and_for_all(size):
    # The encoder decodes the query image again: an orientation left in its EXIF would turn it twice.
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(Image.new("RGB", size, (90, 90, 90)), "JPEG", exif=exif.tobytes())
    once = decode_rgb(data, max_side=512)
    assert once.size == (min(size[1], 512), min(size[1], 512) * 2)
    assert decode_rgb(once).size == once.size
    assert decode_rgb(decode_rgb(data)).size == (size[1], size[0])


def test_a_palette_image_is_converted_band_by_band_as_a_whole_conversion_would():
    im = Image.new("P", (4096, 3072))
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (253 * 3))
    im.paste(1, (0, 0, 4096, 1536))
    im.paste(2, (0, 1536, 4096, 3072))
    data = encoded(im, "PNG")
    small = decode_rgb(data, max_side=512)
    whole = decode_rgb(data).reduce(3).resize((683, 512), Image.Resampling.BICUBIC)
    assert (small.mode, small.size) == ("RGB", (683, 512))
    assert small.tobytes() == whole.tobytes()


def test_pil_hands_huge_images_memory_back_to_the_system():
    assert "PILLOW_BLOCK_SIZE" in os.environ or Image.core.get_block_size() == PIL_BLOCK_BYTES > 32 * MiB


def test_without_max_side_an_image_decodes_at_full_size_as_before():
    im = decode_rgb(png_solid(3000, 2000))
    assert (im.mode, im.size) == ("RGB", (3000, 2000))


def test_the_decode_budget_waits_a_bounded_time():
    budget = uploads.DecodeBudget(100, wait_s=0.1)
    with budget.hold(80):
        t0 = time.monotonic()
        with pytest.raises(uploads.DecodeBusy):
            with budget.hold(30):
                pass
        assert 0.1 <= time.monotonic() - t0 < 1
        with budget.hold(20):  # what is left is lent at once
            pass
    with budget.hold(10**9):  # more than the whole budget: it runs alone
        pass
    assert budget.free == 100


# -- over HTTP ------------------------------------------------------------------------------


class BodyCounter:
    """ASGI wrapper: the request body bytes the app read and the status it answered, per request."""

    def __init__(self, app):
        self.app = app
        self.seen: list[dict] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        record = {"path": scope["path"], "read": 0, "status": None}
        self.seen.append(record)

        async def counting_receive():
            message = await receive()
            record["read"] += len(message.get("body", b""))
            return message

        async def recording_send(message):
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
            await send(message)

        await self.app(scope, counting_receive, recording_send)


@pytest.fixture(scope="module")
def served(tmp_path_factory, mini_encoder):
    base = tmp_path_factory.mktemp("uploads")
    make_corpus(base / "photos", n=8, seed=6)
    lib = open_library(base / "lib", encoder=mini_encoder, max_upload_bytes=LIMIT, generator="none")
    lib.index([base / "photos"])
    counter = BodyCounter(create_app(lib))
    with BackgroundServer(counter) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        yield client, server, counter
    lib.close()


def small_png() -> bytes:
    return encoded(Image.new("RGB", (64, 48), (20, 200, 20)), "PNG")


def vm_kib(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


@pytest.mark.slow
def test_eight_huge_uploads_at_once_keep_the_server_under_a_gib(served, monkeypatch):
    client, _, _ = served
    monkeypatch.setattr(uploads.QUERY_DECODES, "wait_s", 120)  # memory is the point here, not a slow machine's 503
    big = png_solid(9000, 9000)  # 81 Mpx, under max_pixels; ~250 KB
    assert len(big) < LIMIT
    assert client.post("/search/image", files={"file": ("s.png", small_png(), "image/png")}).status_code == 200
    baseline, peak, done = vm_kib("VmRSS"), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], vm_kib("VmRSS"))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = threading.Barrier(8)

    def upload(_):
        start.wait()
        r = client.post("/search/image", files={"file": ("huge.png", big, "image/png")}, data={"k": "2"})
        return r.status_code, len(r.json()["results"])

    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(upload, range(8)))
    finally:
        done.set()
        sampler.join()
    assert answers == [(200, 2)] * 8
    growth_mib = (max(peak[0], vm_kib("VmRSS")) - baseline) / 1024
    assert growth_mib < 1024, f"RSS grew by {growth_mib:.0f} MiB"
    left_mib = (vm_kib("VmRSS") - baseline) / 1024
    assert left_mib < 256, f"{left_mib:.0f} MiB still resident"  # the full-size pixels went back to the system


@pytest.mark.slow
def test_a_decode_that_cannot_get_memory_in_time_answers_503(served, monkeypatch):
    client, _, _ = served
    monkeypatch.setattr(uploads.QUERY_DECODES, "wait_s", 0.2)
    knn = {"image": base64.b64encode(small_png()).decode(), "modality": "image", "num_images": 1}
    with uploads.QUERY_DECODES.hold(uploads.QUERY_DECODES.total):
        r = client.post("/search/image", files={"file": ("s.png", small_png(), "image/png")})
        knn_r = client.post("/knn-service", content=json.dumps(knn))
    for answer in (r, knn_r):
        assert answer.status_code == 503
        assert answer.json() == {"detail": "the server is decoding other large images; try again shortly"}
        assert answer.headers["Retry-After"] == "1"
    assert client.post("/search/image", files={"file": ("s.png", small_png(), "image/png")}).status_code == 200
    assert client.post("/knn-service", content=json.dumps(knn)).status_code == 200


def open_temp_files() -> list[str]:
    tmp = os.path.realpath(tempfile.gettempdir())
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(tmp + "/") and "pytest-" not in target:
            found.append(target)
    return found


def chunked_post(url: str, path: str, head: bytes, total: int, chunk: int = 64 * 1024) -> tuple[int, bytes]:
    """POST `head` then zeros in chunked transfer encoding until `total` bytes are sent or the
    server answers; returns (bytes sent, the response as far as it came)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n".encode()
        + b"Content-Type: multipart/form-data; boundary=BOUNDARY\r\n\r\n"
    )
    frame = lambda data: f"{len(data):x}\r\n".encode() + data + b"\r\n"  # noqa: E731
    sent, zeros = 0, bytes(chunk)
    try:
        sock.sendall(frame(head))
        while sent < total:
            sock.settimeout(0)  # has the server answered already?
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break
            except BlockingIOError:
                pass
            sock.settimeout(10)
            sock.sendall(frame(zeros))
            sent += chunk
    except OSError:  # the server closed the connection under us
        pass
    sock.settimeout(10)
    response = b""
    try:  # the server keeps the connection (it drains the rest of the body): read one response
        while not (m := re.search(rb"\r\n\r\n", response)) or len(response) < m.end() + content_length(response):
            if not (part := sock.recv(65536)):
                break
            response += part
    except OSError:
        pass
    sock.close()
    return sent, response


def content_length(head: bytes) -> int:
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    return int(m.group(1)) if m else 0


@pytest.mark.slow
def test_a_chunked_upload_over_the_limit_is_refused_while_it_streams(served):
    client, server, counter = served
    before = open_temp_files()
    head = (
        b"--BOUNDARY\r\n"
        b'Content-Disposition: form-data; name="file"; filename="big.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )
    sent, response = chunked_post(server.url, "/search/image", head, total=64 * MiB)
    record = counter.seen[-1]
    assert record["path"] == "/search/image" and record["status"] == 413
    # Read: the limit and the form's allowance, and what uvicorn hands over in one message
    # beyond it (it reads the socket 256 KiB at a time); sent: no more than the socket buffers hold.
    assert record["read"] <= LIMIT + uploads.FORM_OVERHEAD_BYTES + 256 * 1024
    assert sent < 16 * MiB
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line.split(b" ")[:2] == [b"HTTP/1.1", b"413"]
    assert json.loads(rest.partition(b"\r\n\r\n")[2]) == {"detail": "Content Too Large"}
    assert open_temp_files() == before
    assert client.get("/health").status_code == 200  # the server goes on


def declared_too_large(r: httpx.Response) -> bool:
    """Starlette's own answer to a declared length over the limit: it replaces whatever the app
    would answer, so it is plain text (a body over the limit while it streams gets the usual JSON)."""
    return (r.headers["content-type"], r.text) == ("text/plain; charset=utf-8", "Content Too Large")


@pytest.mark.slow
def test_a_declared_length_over_the_limit_is_refused_before_reading(served):
    client, _, counter = served
    body = b"x" * (LIMIT + uploads.FORM_OVERHEAD_BYTES + 1)
    r = client.post("/search/image", content=body, headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert r.status_code == 413 and declared_too_large(r)
    assert counter.seen[-1]["read"] == 0
    # A file part over the limit inside a body under it: the upload's own 413.
    r = client.post("/search/image", files={"file": ("big.png", os.urandom(LIMIT + 1), "image/png")})
    assert (r.status_code, r.json()) == (413, {"detail": f"upload is larger than the limit of {LIMIT} bytes"})


@pytest.mark.slow
def test_json_bodies_have_a_limit_too(served):
    client, _, counter = served
    limit = uploads.json_body_limit(LIMIT)
    assert limit == 16 * MiB  # the floor: a query of 33 vectors of 8192 floats fits
    for path in ("/search", "/knn-service", "/metadata"):
        r = client.post(path, content=b"[" + b"1," * (limit // 2) + b"1]", headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and declared_too_large(r), path
        assert counter.seen[-1]["read"] == 0  # its declared length says so before a byte is read
