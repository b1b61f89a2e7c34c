"""The loopback server that tests, benchmarks and notebooks run the API in."""

import json
import socket

import httpx
from fastapi import FastAPI

from mmsearch.api.background import BackgroundServer


def test_kept_alive_connections_send_without_delay():
    # Without TCP_NODELAY a keep-alive response written in two parts waits ~40 ms for the
    # client's delayed ACK: every request of a session would pay it.
    app = FastAPI()
    app.get("/ping")(lambda: {"ok": True})
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/ping").json() == {"ok": True}
        connections = list(server._server.server_state.connections)
        assert len(connections) == 1
        sock = connections[0].transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def exchange(url: str, request: bytes) -> bytes:
    """Send a raw request whole, then read the answer to the end of the stream."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def ping_server() -> BackgroundServer:
    app = FastAPI()
    app.get("/ping")(lambda q: {"length": len(q)})
    return BackgroundServer(app)


def test_a_megabyte_query_string_is_answered_414_not_reset():
    # Before: h11 refused the head at 16 KiB and uvicorn closed at once, so the client, still
    # sending, got a connection reset and never saw a status.
    with ping_server() as server:
        answer = exchange(server.url, b"GET /ping?q=" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 414 Request-URI Too Long"
        assert json.loads(rest.partition(b"\r\n\r\n")[2]) == {
            "detail": "the request line (URL and query string) is longer than 16384 bytes"
        }
        # the server goes on answering
        assert httpx.get(server.url + "/ping", params={"q": "abc"}).json() == {"length": 3}


def test_too_many_header_bytes_are_answered_431():
    with ping_server() as server:
        headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"b" * 1000) for i in range(200))
        answer = exchange(server.url, b"GET /ping?q=a HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
        assert b'"detail":"the request headers are longer than 16384 bytes"' in answer


def test_a_head_under_the_limit_is_served():
    with ping_server() as server:
        answer = exchange(
            server.url, b"GET /ping?q=" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 200 OK")
        assert answer.endswith(b'{"length":10000}')


def test_a_malformed_request_still_gets_uvicorns_400():
    with ping_server() as server:
        assert exchange(server.url, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400 ")
