"""Videos over HTTP: a search hit's moment, byte ranges of the file, and a frame at a time."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer
from mmsearch.encoders.video import frame_at
from mmsearch.evaluation.video_eval import iou


@pytest.mark.slow
def test_api_serves_moments_ranges_and_frames(video_library):
    lib, root, manifest, _ = video_library
    item = next(i for i in manifest["items"] if len(i["shots"]) >= 2)
    shot = item["shots"][-1]
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post("/search", json={"text": shot["caption"], "k": 2, "kind": "video"})
        assert r.status_code == 200
        top = r.json()["results"][0]
        assert top["kind"] == "video" and top["path"] == str((root / item["file"]).resolve())
        assert iou((top["t_start"], top["t_end"]), (shot["t_start"], shot["t_end"])) >= 0.5

        data = (root / item["file"]).read_bytes()
        r = client.get(f"/media/{top['id']}/file", headers={"Range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == data[100:200]
        assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"

        r = client.get(f"/media/{top['id']}/thumbnail", params={"t": shot["t_start"] + 0.1})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        thumb = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"), np.float32)
        frame = frame_at(str(root / item["file"]), shot["t_start"] + 0.1, side=thumb.shape[0])
        assert thumb.shape[:2] == frame.shape[:2] and np.abs(thumb - frame).mean() < 8  # that frame, as JPEG
        assert client.get(f"/media/{top['id']}/thumbnail", params={"t": item["duration"] + 5}).status_code == 422
        assert client.get(f"/media/{top['id']}/thumbnail", params={"t": -1}).status_code == 422


@pytest.mark.slow
def test_a_video_clip_is_a_query_over_http(video_library, tmp_path):
    lib, root, manifest, _ = video_library
    clip = root / manifest["items"][1]["file"]
    with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post(
            "/search/video", files={"file": ("clip.mp4", clip.read_bytes())}, data={"k": "2", "kind": "video"}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["via"], body["results"][0]["path"]) == ("video", str(clip.resolve()))
        r = client.post("/search/video", files={"file": ("x.mp4", b"not a video at all")})
        assert r.status_code == 400 and "not a readable video" in r.json()["detail"]
    settings = lib.settings
    lib.settings = settings.with_overrides(max_query_video_bytes=4096)
    try:
        with BackgroundServer(create_app(lib)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
            r = client.post("/search/video", files={"file": ("clip.mp4", clip.read_bytes())})
            assert r.status_code == 413
    finally:
        lib.settings = settings
