"""`mmsearch index` ends with a message and exit code 2, nothing half done, when what the
library needs cannot be had."""

import os
import subprocess
import sys

from ..helpers import make_corpus


def test_an_unreachable_milvus_server_is_an_error_message_not_a_traceback(tmp_path):
    make_corpus(tmp_path / "photos", n=2)
    env = os.environ | {"MMSEARCH_VECTOR_BACKEND": "milvus", "MMSEARCH_MILVUS_URI": "http://127.0.0.1:9"}
    cmd = [sys.executable, "-m", "mmsearch", "index", str(tmp_path / "photos"), "--library", str(tmp_path / "lib")]
    child = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == 2, child.stderr
    assert "could not open Milvus at http://127.0.0.1:9 within 10 s" in child.stdout + child.stderr
    assert "Traceback" not in child.stdout + child.stderr
