"""The loopback server that tests, benchmarks and notebooks run the API in."""

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
