"""create_app(library) -> FastAPI: the routers of each concern over one library's shared state.

Routes live in routes/ (search, generate, media, jobs, models, indexes, browse, duplicates,
health, the page) and clip_retrieval; which status answers which error is the one table of errors.py."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from ..library import Library
from .clip_retrieval import clip_retrieval_router
from .errors import add_error_handlers
from .observability import add_request_tracking
from .routes.browse import browse_router
from .routes.duplicates import duplicates_router
from .routes.generate import generate_router
from .routes.health import health_router
from .routes.indexes import indexes_router
from .routes.jobs import jobs_router
from .routes.media import media_router
from .routes.models import models_router
from .routes.page import add_page
from .routes.search import search_router
from .security import add_cors
from .state import AppState
from .uploads import json_body_limit

# Starlette tries routes in this order: media's GET /media/{id} before generate's DELETE of
# the same path keeps the Allow header of a 405 there as it was ("GET").
ROUTERS = (
    health_router,
    search_router,
    media_router,
    generate_router,
    jobs_router,
    models_router,
    indexes_router,
    browse_router,
    duplicates_router,
    clip_retrieval_router,
)


def create_app(library: Library) -> FastAPI:
    state = AppState.of(library)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        state.close()

    app = FastAPI(
        title="mmsearch",
        version="0.1.0",
        description="Multimodal search over a media library.",
        lifespan=lifespan,
        max_body_size=json_body_limit(state.settings.max_upload_bytes),  # 413 while it streams in; uploads: less
    )
    add_request_tracking(app, state.metrics)
    add_cors(app, state.settings)
    add_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router(state))
    add_page(app)
    app.state.library = library
    return app


def create_app_from_env() -> FastAPI:
    """The app over the library MMSEARCH_* names: what each worker process of
    `mmsearch serve --workers N` builds for itself (the library is closed when it stops)."""
    from .observability import configure_json_logging

    configure_json_logging()
    library = Library.open()
    library.encoder  # load the model before accepting requests
    app = create_app(library)
    app.router.on_shutdown.append(library.close)
    return app
