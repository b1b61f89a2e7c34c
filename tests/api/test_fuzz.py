"""A standing fuzz of the served API: schemathesis draws requests from /openapi.json (valid
ones and invalid ones) for every operation and sends them to a small real library over
HTTP, without API keys, and with them (the key sent, and not). No answer may be a 5xx but
the documented 503 of generation turned off. Bounded and deterministic: a fixed number of
examples per operation, derandomized, no example database."""

import httpx
import pytest

from mmsearch.api.app import create_app
from mmsearch.api.background import BackgroundServer

from ..helpers import make_corpus, open_library

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra")
hypothesis = pytest.importorskip("hypothesis")

pytestmark = pytest.mark.slow  # serves two libraries and sends a few thousand requests

EXAMPLES = 20  # per operation and generation mode
KEY = "fuzz-key-0123456789abcdef"
GENERATION_OFF = {"detail": "generation is turned off (MMSEARCH_GENERATOR=none)"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "photos"
    make_corpus(root, n=12, seed=13)
    return root


def serve(tmp_path_factory, mini_encoder, corpus, **settings):
    # POST /jobs may index only an empty folder: fuzzing it reaches every answer and indexes nothing.
    allowed = tmp_path_factory.mktemp("fuzz-index-roots")
    lib = open_library(
        tmp_path_factory.mktemp("fuzzlib") / "lib",
        encoder=mini_encoder,
        generator="none",
        index_roots=[allowed],
        **settings,
    )
    lib.index([corpus])
    return lib


@pytest.fixture(scope="module")
def open_server(tmp_path_factory, mini_encoder, corpus):
    lib = serve(tmp_path_factory, mini_encoder, corpus)
    with BackgroundServer(create_app(lib)) as server:
        yield server.url
    lib.close()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory, mini_encoder, corpus):
    lib = serve(tmp_path_factory, mini_encoder, corpus, api_keys=[KEY], protect_reads=True)
    with BackgroundServer(create_app(lib)) as server:
        yield server.url
    lib.close()


def is_server_fault(response) -> bool:
    if response.status_code < 500:
        return False
    if response.status_code == 503:
        try:
            return response.json() != GENERATION_OFF
        except ValueError:
            return True
    return True


def fuzz(url: str, headers: dict[str, str]) -> tuple[list[str], int]:
    """Every operation of the served schema, EXAMPLES valid and EXAMPLES invalid requests each;
    returns the server faults (as curl commands with what came back) and the requests sent."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    schema = schemathesis.openapi.from_url(url + "/openapi.json", headers=headers)
    faults, sent = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],  # a fault is reported as found, not shrunk
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def send(case):
                nonlocal sent
                response = case.call(base_url=url, headers=headers, timeout=60)
                sent += 1
                if is_server_fault(response):
                    faults.append(
                        f"{response.status_code} {response.text[:300]!r} <- {case.as_curl_command(headers=headers)}"
                    )

            try:
                send()
            except Unsatisfiable:  # no invalid request exists where there is nothing to send (GET /health)
                assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
    return faults, sent


def test_no_request_gets_a_server_error_without_keys(open_server):
    faults, sent = fuzz(open_server, {})
    assert faults == []
    assert sent >= 11 * EXAMPLES  # every operation was reached (hypothesis may draw fewer of a small space)
    assert httpx.get(open_server + "/health").json()["status"] == "ok"


def test_no_request_gets_a_server_error_with_the_key(keyed_server):
    faults, sent = fuzz(keyed_server, {"X-API-Key": KEY})
    assert faults == []
    assert sent >= 11 * EXAMPLES


def test_no_request_gets_a_server_error_without_the_key(keyed_server):
    faults, sent = fuzz(keyed_server, {})
    assert faults == []
    assert sent >= 12 * EXAMPLES
    assert httpx.post(keyed_server + "/search", json={"text": "red"}).status_code == 401
