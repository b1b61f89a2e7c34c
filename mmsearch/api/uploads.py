"""Query images and request bodies, bounded in memory and on disk.

A query image is decoded at the scale the index was built at (its shorter side at most
QUERY_MAX_SIDE, as index jobs decode), and the full-size pixels it is decoded from are paid
for out of one process-wide budget: decodes that do not fit wait for it, a bounded time,
then answer 503. Request bodies are refused (413) while they stream in, past the limits
below, before they are spooled or parsed.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from fastapi import HTTPException
from PIL import Image

from ..imageio import load_rgb, open_image, peak_bytes

QUERY_MAX_SIDE = 512  # the shorter side index jobs decode images to (indexer.decode.DEFAULT_MAX_SIDE)
# Memory of the decodes running at once (imageio.peak_bytes: ~4 bytes a pixel for an image
# reduced band by band): two 81-megapixel PNGs (~324 MB each) at a time; one over the whole
# budget is decoded alone.
DECODE_BUDGET_BYTES = 768 * 1024 * 1024
DECODE_WAIT_S = 10.0  # how long a decode waits for its share before the request answers 503
BUSY_DETAIL = "the server is decoding other large images; try again shortly"
FORM_OVERHEAD_BYTES = 64 * 1024  # an upload's multipart body beyond the file: boundaries, headers, form fields
# JSON bodies: a base64 image for /knn-service, and never less than a /search of 33 vectors of 8192 floats.
JSON_BODY_FLOOR_BYTES = 16 * 1024 * 1024


def upload_body_limit(max_upload_bytes: int) -> int:
    """The largest multipart body of an upload of at most max_upload_bytes."""
    return max_upload_bytes + FORM_OVERHEAD_BYTES


def json_body_limit(max_upload_bytes: int) -> int:
    """The largest body of every other request: a JSON body with a base64 image in it."""
    return max(JSON_BODY_FLOOR_BYTES, -(-max_upload_bytes * 4 // 3) + FORM_OVERHEAD_BYTES)


class DecodeBusy(RuntimeError):
    """The decode budget stayed spent for the whole wait."""


class DecodeBudget:
    """A budget of bytes shared by the decodes running at once: each takes its share (at most
    the whole budget, so that one larger than it runs alone) or waits up to wait_s for it."""

    def __init__(self, total: int, wait_s: float):
        self.total, self.wait_s, self.free = total, wait_s, total
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, amount: int):
        share = min(amount, self.total)
        deadline = time.monotonic() + self.wait_s
        with self._changed:
            while self.free < share:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DecodeBusy(f"{share} bytes to decode; {self.free} of {self.total} free after {self.wait_s} s")
                self._changed.wait(left)
            self.free -= share
        try:
            yield
        finally:
            with self._changed:
                self.free += share
                self._changed.notify_all()


QUERY_DECODES = DecodeBudget(DECODE_BUDGET_BYTES, DECODE_WAIT_S)


def decode_query_image(data: bytes, max_pixels: int) -> Image.Image:
    """An uploaded query image as RGB at the index's scale. Raises UnreadableImageError, or
    HTTPException 503 when the decode budget stays spent."""
    im = open_image(data, max_pixels, draft_side=QUERY_MAX_SIDE)
    try:
        with QUERY_DECODES.hold(peak_bytes(im, QUERY_MAX_SIDE)):
            try:
                return load_rgb(im, QUERY_MAX_SIDE)
            finally:
                im.close()  # the full-size pixels go before the share is given back
    except DecodeBusy as e:
        raise HTTPException(503, BUSY_DETAIL, headers={"Retry-After": "1"}) from e
