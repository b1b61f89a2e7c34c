"""The decode worker modules (mmsearch/indexer/decode_video.py, decode.py) stay light."""

from __future__ import annotations

import subprocess
import sys


def test_decode_workers_do_not_import_torch():
    """Worker processes import the decode modules; torch there would cost ~0.5 GiB each."""
    code = "import sys, mmsearch.indexer.decode_video, mmsearch.indexer.decode; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
