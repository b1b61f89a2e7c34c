"""`python -m mmsearch.cli`, as `mmsearch`."""

from . import app

app()
