"""`mmsearch serve`: the HTTP API and web page over a library."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import parse_bytes
from .common import LIBRARY_OPT, MODEL_OPT, console, failing_on, open_library
from .index import INDEX_MEMORY_OPT


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 exposes the API to your network)."),
    port: int = typer.Option(8000, min=1, max=65535),
    library: Optional[Path] = LIBRARY_OPT,
    model: Optional[str] = MODEL_OPT,
    workers: int = typer.Option(
        1,
        min=1,
        max=64,
        help="Server processes. Searches run in parallel threads in each, but their Python work shares one core "
        "per process: on N cores, N workers answer up to N times as many searches (each loads the model).",
    ),
    index_memory: Optional[str] = INDEX_MEMORY_OPT,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import os

    import uvicorn

    from ..api.app import create_app
    from ..api.http_protocol import PROTOCOL
    from ..api.observability import configure_json_logging
    from ..encoders.base import EncoderError

    with failing_on(EncoderError, ValueError):
        budget = parse_bytes(index_memory) if index_memory else None
        lib = open_library(library, model, index_memory=budget)
        lib.encoder  # load the model before accepting requests
    console.print(f"serving {lib.dir} on http://{host}:{port}/ (web page: /, API docs: /docs)")
    if workers > 1:
        recorded = any(m["active"] for m in lib.models())
        lib.close()  # each worker opens the library itself, from the settings passed on here
        os.environ["MMSEARCH_LIBRARY_DIR"] = str(lib.dir)
        if budget is not None:
            os.environ["MMSEARCH_INDEX_MEMORY"] = str(budget)
        # Workers open the library with its own model, so one started after a `model use` (uvicorn
        # restarts dead workers) takes the new one; a library with no model yet gets this one.
        if recorded:
            os.environ.pop("MMSEARCH_MODEL", None)
        else:
            os.environ["MMSEARCH_MODEL"] = lib.model_spec
        # Torch's threads per worker: the cores shared out, not each worker taking them all.
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
        uvicorn.run(
            "mmsearch.api.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            http=PROTOCOL,
            log_config=None,
            access_log=False,
        )
        return
    configure_json_logging()
    with lib:
        # uvicorn keeps our JSON handler (log_config=None); its access log would repeat ours
        uvicorn.run(create_app(lib), host=host, port=port, log_config=None, access_log=False, http=PROTOCOL)
