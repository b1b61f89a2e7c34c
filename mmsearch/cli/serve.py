"""`mmsearch serve`: the HTTP API and web page over a library."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import LIBRARY_OPT, MODEL_OPT, console, failing_on, open_library


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 exposes the API to your network)."),
    port: int = typer.Option(8000, min=1, max=65535),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from ..api.app import create_app
    from ..api.observability import configure_json_logging
    from ..encoders.base import EncoderError

    with failing_on(EncoderError):
        lib = open_library(library, model)
        lib.encoder  # load the model before accepting requests
    console.print(f"serving {lib.dir} on http://{host}:{port}/ (web page: /, API docs: /docs)")
    configure_json_logging()
    with lib:
        # uvicorn keeps our JSON handler (log_config=None); its access log would repeat ours
        uvicorn.run(create_app(lib), host=host, port=port, log_config=None, access_log=False)
