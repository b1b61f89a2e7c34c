"""`mmsearch serve --workers N`: N server processes over one library answer the same searches."""

import os
import subprocess
import sys

import httpx
import pytest

from mmsearch.search.query import SearchRequest, parse_text

from ..helpers import free_port, make_corpus, open_library, wait_healthy


@pytest.mark.slow
def test_two_workers_serve_one_library_and_stop_on_sigterm(tmp_path, mini_encoder):
    make_corpus(tmp_path / "photos", n=24)
    with open_library(tmp_path / "lib", encoder=mini_encoder) as lib:
        lib.index([tmp_path / "photos"])
        expected = [h.id for h in lib.search(SearchRequest(terms=parse_text("a red circle"), k=5))]
    port = free_port()
    env = os.environ | {"MMSEARCH_DECODE_WORKERS": "0"}
    cmd = [sys.executable, "-m", "mmsearch", "serve", "--library", str(tmp_path / "lib"), "--port", str(port)]
    server = subprocess.Popen([*cmd, "--workers", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        # Two processes loading torch and the model: past 120 s on 2 cores shared with a 10M index build
        wait_healthy(url, server, within_s=300)
        health = httpx.get(url + "/health", timeout=10).json()
        assert health["media"] == 24 and health["model"] == "mini"
        answers = {
            tuple(h["id"] for h in httpx.post(url + "/search", json={"text": "a red circle", "k": 5}).json()["results"])
            for _ in range(12)
        }
        assert answers == {tuple(expected)}  # every worker answers as the library does in-process
    finally:
        server.terminate()
        assert server.wait(60) == 0
