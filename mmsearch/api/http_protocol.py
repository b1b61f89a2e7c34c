"""uvicorn's h11 protocol, answering a request head that is too long with a status the client sees.

h11 refuses a request line or headers over its limit (16 KiB), and uvicorn then answers 400
and closes at once. A client still sending its long head (a 1 MB query string) gets a TCP
reset instead of that answer. Here the answer says what was too long (414 for the request
line, 431 for the headers), and the connection lingers: what the client still sends is read
and dropped, within a bound of bytes and time, so the answer reaches it before the close."""

from __future__ import annotations

import json
from http import HTTPStatus

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

PROTOCOL = "mmsearch.api.http_protocol:HeadLimitH11Protocol"  # uvicorn's `http=` (importable by its workers)
HEAD_LIMIT = 16 * 1024  # h11's own default: the longest request head a server holds in memory
LINGER_S = 5.0  # the longest a refused client may go on sending
LINGER_BYTES = 8 * 1024 * 1024  # the most read and dropped after a refusal


class HeadLimitH11Protocol(H11Protocol):
    _lingering = False
    _dropped = 0
    _linger_timer = None

    def send_400_response(self, msg: str) -> None:
        buffered, _ = self.conn.trailing_data
        if len(buffered) <= self._head_limit():
            super().send_400_response(msg)
            return
        line_done = b"\r\n" in buffered
        status = 431 if line_done else 414
        what = "request headers are" if line_done else "request line (URL and query string) is"
        body = json.dumps({"detail": f"the {what} longer than {self._head_limit()} bytes"}, separators=(",", ":"))
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        response = h11.Response(status_code=status, headers=headers, reason=HTTPStatus(status).phrase)
        for event in (response, h11.Data(data=body.encode()), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self._linger()

    def _head_limit(self) -> int:
        return self.config.h11_max_incomplete_event_size or HEAD_LIMIT

    def _linger(self) -> None:
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer, then end of stream: the client reads it as sent
        self._linger_timer = self.loop.call_later(LINGER_S, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if not self._lingering:
            super().data_received(data)
            return
        self._dropped += len(data)
        if self._dropped > LINGER_BYTES:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)
