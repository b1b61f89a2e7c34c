"""Which HTTP status answers each error raised below the API, in one table.

Every mapped error answers {"detail": str(error)}. Starlette picks the handler of the
nearest class in the error's MRO, so a subclass listed here (MediaNotFoundError) wins over
its base (QueryError). Endpoints still translate an error themselves only where the answer
needs the request's context: an unreadable *upload* is a 400 with a prefix saying so, while
a stored file that no longer decodes is a 404 of that media item.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..encoders.base import EncoderError
from ..imageio import UnreadableImageError
from ..library import GenerationRequestError, GenerationUnavailable, NotGeneratedError
from ..search.query import MediaNotFoundError, QueryError
from .files import OutsideRootsError

STATUS_OF_ERROR: dict[type[Exception], int] = {
    QueryError: 400,  # the query cannot be understood or has nothing to search with
    EncoderError: 400,  # the encoder refused an input (a model it cannot load included)
    UnreadableImageError: 400,  # an image the client sent does not decode
    OutsideRootsError: 403,  # a media row whose file lies outside the library's roots
    MediaNotFoundError: 404,  # a media id the library does not have
    NotGeneratedError: 409,  # deleting media from the user's folders, not generated ones
    GenerationRequestError: 422,  # generation settings the generator refuses (a sampler it lacks)
    GenerationUnavailable: 503,  # no generator can serve: turned off, untrained, another space
}


def status_of(error: Exception) -> int:
    """The table's status of `error`: that of its nearest class listed (as Starlette chooses)."""
    return next(STATUS_OF_ERROR[cls] for cls in type(error).__mro__ if cls in STATUS_OF_ERROR)


async def _answer(_request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=status_of(error))


def add_error_handlers(app: FastAPI) -> None:
    for error_type in STATUS_OF_ERROR:
        app.add_exception_handler(error_type, _answer)
