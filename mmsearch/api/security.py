"""API keys and CORS.

With `api_keys` configured, requests that change state (index jobs, generation when
`protect_generation` is on) need a key in the X-API-Key header; with `protect_reads`,
everything else but the page, /health and the docs needs one too. Adding, switching and
dropping models is refused outright unless keys are configured. Reads also accept the
key in the `mmsearch_api_key` cookie, which the web page sets so that <img> and <video>
requests (which cannot carry headers) are let through; writes never do, so a cross-site
form cannot start a job on a visitor's behalf.
"""

from __future__ import annotations

import secrets

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware

from ..config import Settings

KEY_HEADER = "X-API-Key"
KEY_COOKIE = "mmsearch_api_key"


def _valid(key: str | None, settings: Settings) -> bool:
    # compare_digest against every key: the time taken does not reveal which prefix matched
    return key is not None and any(secrets.compare_digest(key.encode(), k.encode()) for k in settings.api_keys)


def _refuse(why: str) -> HTTPException:
    return HTTPException(
        401, f"{why}: send an API key in the {KEY_HEADER} header", headers={"WWW-Authenticate": "ApiKey"}
    )


class Access:
    """FastAPI dependencies: `Depends(access.read)`, `Depends(access.write)`, and
    `access.check_generation(request)` for endpoints that generate only sometimes."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @property
    def enabled(self) -> bool:
        return bool(self.settings.api_keys)

    def read(self, request: Request) -> None:
        if not (self.enabled and self.settings.protect_reads):
            return
        if not (
            _valid(request.headers.get(KEY_HEADER), self.settings)
            or _valid(request.cookies.get(KEY_COOKIE), self.settings)
        ):
            raise _refuse("this server protects reads")

    def write(self, request: Request) -> None:
        if self.enabled and not _valid(request.headers.get(KEY_HEADER), self.settings):
            raise _refuse("this request changes the library")

    def manage(self, request: Request) -> None:
        """Requests that load models the server then runs (adding and switching models): only
        with keys configured, and with a key."""
        if not self.enabled:
            raise HTTPException(403, "managing models over HTTP needs API keys (set MMSEARCH_API_KEYS)")
        self.write(request)

    def check_generation(self, request: Request) -> None:
        """For a request that will generate images (and store them in the library)."""
        if self.settings.protect_generation:
            self.write(request)


def add_cors(app: FastAPI, settings: Settings) -> None:
    """CORS stays off unless origins are configured."""
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=[KEY_HEADER, "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
