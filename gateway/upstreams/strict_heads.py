"""An upstream's answer head with a bare LF is refused (a 502), not split into header lines.

aiohttp reads answers leniently: a bare LF ends a header line as CRLF does (RFC 9112 §2.2
allows it), so `X-A: one\\nSet-Cookie: evil=1` from an upstream arrives as two headers, and
the gateway would pass the second on to the client as a clean, well-formed header line: a
header injected through an upstream that reflects input into a header value would be
laundered by the proxy. A CR alone is refused by aiohttp already; a bare LF is refused here,
before the parser sees the bytes, so the request ends in a JSON 502 `upstream_unavailable`.

It rests on two aiohttp internals, both stable across 3.x and covered by
tests/security/test_bare_lf.py: the connector's protocol factory (`_factory`) and the
protocol's `set_response_params`, called before each answer is read.
"""

from __future__ import annotations

import functools
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

# Past this many bytes without the end of the head, the parser's own limits refuse it.
MAX_HEAD = 128 * 1024


class BareLineFeed(aiohttp.ClientError):
    """The upstream's answer head has a line ended by LF alone."""


class StrictHeadHandler(ResponseHandler):
    _head: bytes | None = None

    def set_response_params(self, **params: Any) -> None:
        super().set_response_params(**params)
        self._head = b""

    def data_received(self, data: bytes) -> None:
        if self._head is not None and data and not self._bare_lf_in_head(data):
            return
        super().data_received(data)

    def _bare_lf_in_head(self, data: bytes) -> bool:
        """True to let `data` through; False once it was refused (the connection closed)."""
        head = (self._head or b"") + data
        while True:
            end = _head_end(head)
            portion = head if end is None else head[:end]
            if portion.count(b"\n") != portion.count(b"\r\n"):
                self._head = None
                if self.transport is not None:
                    self.transport.close()
                self.set_exception(BareLineFeed("a header line ended by LF alone"))
                return False
            if end is None:
                self._head = head if len(head) < MAX_HEAD else None
                return True
            if not _interim(portion):
                self._head = None
                return True
            head = head[end:]  # a 1xx head: the final one follows


def _head_end(head: bytes) -> int | None:
    ends = [i + 4 for i in [head.find(b"\r\n\r\n")] if i >= 0]
    ends += [i + 2 for i in [head.find(b"\n\n")] if i >= 0]
    return min(ends) if ends else None


def _interim(head: bytes) -> bool:
    return head[9:10] == b"1" and head[:7] == b"HTTP/1."


def strict_connector(**options: Any) -> aiohttp.TCPConnector:
    """A TCPConnector whose connections refuse answer heads with a bare LF."""
    connector = aiohttp.TCPConnector(**options)
    # A subclass of the protocol aiohttp builds; the attribute is typed for the base class.
    connector._factory = functools.partial(  # type: ignore[assignment]
        StrictHeadHandler, loop=connector._loop
    )
    return connector
