"""The error table: each mapped error answers its status with {"detail": message}, through create_app's app."""

import pytest
from fastapi.testclient import TestClient

from mmsearch.api.app import create_app
from mmsearch.api.errors import STATUS_OF_ERROR, status_of
from mmsearch.api.files import OutsideRootsError
from mmsearch.encoders.base import EncoderError, HubUnreachableError, ImageDecodeError, UnknownModelError
from mmsearch.imageio import UnreadableImageError
from mmsearch.library import (
    DrawingBusy,
    DrawingTimeout,
    DuplicatesBusy,
    GenerationRequestError,
    GenerationUnavailable,
    LockTimeout,
    ModelMismatchError,
    ModelNotAdded,
    ModelStateError,
    NotGeneratedError,
    QueryVideoBusy,
)
from mmsearch.search.query import MediaNotFoundError, QueryError
from mmsearch.storage.milvus_connect import MilvusLockedError, MilvusUnavailableError

from ..helpers import open_library

# The statuses the endpoints answer: pinned here, not read from the table.
EXPECTED = {
    QueryError: 400,
    EncoderError: 400,
    UnreadableImageError: 400,
    OutsideRootsError: 403,
    MediaNotFoundError: 404,
    NotGeneratedError: 409,
    # A library's models: one it does not hold, one not complete or active, one not its own.
    ModelNotAdded: 404,
    ModelStateError: 409,
    ModelMismatchError: 409,
    GenerationRequestError: 422,
    GenerationUnavailable: 503,
    # Waits with a bound (searches in parallel, drawings off the search path): busy, try again.
    DrawingBusy: 429,
    DrawingTimeout: 503,
    LockTimeout: 503,
    QueryVideoBusy: 503,  # query clips being decoded took every turn for the whole wait
    DuplicatesBusy: 503,  # another request's duplicate search outlasted the wait
    MilvusUnavailableError: 503,  # the vector backend's server does not answer (or Lite's file is held)
}
RAISED = [
    *[(error_type(f"{error_type.__name__} says why"), status) for error_type, status in EXPECTED.items()],
    # Subclasses answer as their nearest listed class.
    (UnknownModelError("no model 'x'"), 400),
    (HubUnreachableError("hub unreachable"), 400),
    (ImageDecodeError(3, "truncated"), 400),
    (MilvusLockedError("another process holds milvus.db"), 503),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    # An encoder is never loaded: these routes only raise.
    lib = open_library(tmp_path_factory.mktemp("errors") / "lib", encoder=object(), generator="none")
    app = create_app(lib)

    @app.get("/raise/{n}")
    def raise_one(n: int):
        raise RAISED[n][0] if n >= 0 else ValueError("not in the table")

    yield TestClient(app, raise_server_exceptions=False)
    lib.close()


def test_the_table_is_the_statuses_the_endpoints_answered():
    assert STATUS_OF_ERROR == EXPECTED


@pytest.mark.parametrize("n", range(len(RAISED)), ids=[type(e).__name__ for e, _ in RAISED])
def test_each_mapped_error_answers_its_status_with_its_message_as_detail(client, n):
    error, status = RAISED[n]
    r = client.get(f"/raise/{n}")
    assert r.status_code == status == status_of(error)
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"detail": str(error)}
    assert r.headers["X-Request-ID"]  # answered inside the request tracking, like any response


def test_an_error_outside_the_table_stays_a_server_error(client):
    r = client.get("/raise/-1")
    assert r.status_code == 500 and "not in the table" not in r.text


@pytest.mark.parametrize(
    "method, url, body, status, detail",
    [
        ("GET", "/media/999", None, 404, "no media with id 999"),
        ("GET", f"/media/{2**63}/file", None, 404, f"no media with id {2**63}"),
        ("GET", f"/media/{2**31}", None, 404, f"no media with id {2**31}"),  # past PostgreSQL's INTEGER
        ("DELETE", "/media/999", None, 404, "no media with id 999"),
        ("POST", "/generate", {"prompt": "a red circle"}, 503, "generation is turned off (MMSEARCH_GENERATOR=none)"),
        ("POST", "/jobs", {"roots": [""]}, 400, "an empty root is not an absolute path"),
        (
            "POST",
            "/jobs",
            {"roots": ["/no/such/folder"]},
            403,
            "indexing over HTTP is turned off: MMSEARCH_INDEX_ROOTS is empty (set it to the folders clients may index)",
        ),
    ],
)
def test_real_endpoints_answer_their_errors_as_before(client, method, url, body, status, detail):
    r = client.request(method, url, json=body)
    assert (r.status_code, r.json()) == (status, {"detail": detail})
