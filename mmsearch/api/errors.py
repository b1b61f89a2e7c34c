"""Which HTTP status answers each error raised below the API, in one table.

Every mapped error answers {"detail": str(error)}. Starlette picks the handler of the
nearest class in the error's MRO, so a subclass listed here (MediaNotFoundError) wins over
its base (QueryError). Endpoints still translate an error themselves only where the answer
needs the request's context: an unreadable *upload* is a 400 with a prefix saying so, while
a stored file that no longer decodes is a 404 of that media item.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..encoders.base import EncoderError
from ..imageio import UnreadableImageError
from ..library import (
    DrawingBusy,
    DrawingTimeout,
    DuplicatesBusy,
    GenerationRequestError,
    GenerationUnavailable,
    LockTimeout,
    MilvusUnavailableError,
    ModelMismatchError,
    ModelNotAdded,
    ModelStateError,
    NotGeneratedError,
    QueryVideoBusy,
)
from ..search.query import MediaNotFoundError, QueryError
from .files import OutsideRootsError

STATUS_OF_ERROR: dict[type[Exception], int] = {
    QueryError: 400,  # the query cannot be understood or has nothing to search with
    EncoderError: 400,  # the encoder refused an input (a model it cannot load included)
    UnreadableImageError: 400,  # an image the client sent does not decode
    OutsideRootsError: 403,  # a media row whose file lies outside the library's roots
    MediaNotFoundError: 404,  # a media id the library does not have
    QueryVideoBusy: 503,  # other query clips hold every decoding turn
    DuplicatesBusy: 503,  # another request's duplicate search outlasted the wait
    ModelNotAdded: 404,  # a model the library holds no vectors of
    NotGeneratedError: 409,  # deleting media from the user's folders, not generated ones
    ModelStateError: 409,  # switching to an incomplete model, dropping the active one
    ModelMismatchError: 409,  # a model other than the library's
    GenerationRequestError: 422,  # generation settings the generator refuses (a sampler it lacks)
    DrawingBusy: 429,  # the drawing queue is full: try again shortly
    GenerationUnavailable: 503,  # no generator can serve: turned off, untrained, another space
    DrawingTimeout: 503,  # the drawing outlasted the request's wait (it is stored when done)
    LockTimeout: 503,  # an index update held the index past a search's wait
    MilvusUnavailableError: 503,  # the Milvus server does not answer
}


def status_of(error: Exception) -> int:
    """The table's status of `error`: that of its nearest class listed (as Starlette chooses)."""
    return next(STATUS_OF_ERROR[cls] for cls in type(error).__mro__ if cls in STATUS_OF_ERROR)


async def _answer(_request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": json_safe(str(error))}, status_code=status_of(error))


def json_safe(value: Any) -> Any:
    """`value` with what JSON cannot carry spelled out: NaN and infinities as the strings
    "NaN", "Infinity" and "-Infinity", lone surrogates and bytes that are not UTF-8 as
    backslash escapes. Everything else is left as it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
    # FastAPI's own answer, {"detail": [errors]}, but one that JSON can always carry: an error
    # echoes the rejected input (NaN, 1e400, a lone surrogate, bytes that are not UTF-8).
    # Made safe before jsonable_encoder (which fails on such bytes) and after it (for what it made).
    return JSONResponse({"detail": json_safe(jsonable_encoder(json_safe(error.errors())))}, status_code=422)


def add_error_handlers(app: FastAPI) -> None:
    for error_type in STATUS_OF_ERROR:
        app.add_exception_handler(error_type, _answer)
    app.add_exception_handler(RequestValidationError, _invalid_request)
