"""The gateway's own failures, each with its status and code, rendered as one JSON shape."""

from __future__ import annotations

import json
from typing import ClassVar

from gateway.asgi import Send

JSON_HEADERS = [(b"content-type", b"application/json")]


class GatewayError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "gateway_error"
    never_sent: ClassVar[bool] = False
    """True when the upstream surely never saw the request: safe to try again."""

    def __init__(
        self,
        message: str,
        *,
        route: str | None = None,
        target: str | None = None,
        retry_after: int | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.route = route
        self.target = target
        self.retry_after = retry_after
        self.headers = headers

    def located(self, route: str | None, target: str | None) -> GatewayError:
        """Fill in where it happened, keeping what the raiser already knew."""
        self.route = self.route or route
        self.target = self.target or target
        return self


class InternalError(GatewayError):
    status_code, code = 500, "internal_error"


class NoRouteMatched(GatewayError):
    status_code, code = 404, "no_route"


class BadPath(GatewayError):
    status_code, code = 400, "bad_path"


class BadMethod(GatewayError):
    status_code, code = 400, "bad_method"


class Unauthorized(GatewayError):
    status_code, code = 401, "unauthorized"


class Forbidden(GatewayError):
    status_code, code = 403, "forbidden"


class PayloadTooLarge(GatewayError):
    status_code, code = 413, "payload_too_large"


class UriTooLong(GatewayError):
    status_code, code = 414, "uri_too_long"


class RateLimited(GatewayError):
    status_code, code = 429, "rate_limited"


class HeadersTooLarge(GatewayError):
    status_code, code = 431, "headers_too_large"


class UpstreamUnavailable(GatewayError):
    status_code, code = 502, "upstream_unavailable"


class ConnectFailed(UpstreamUnavailable):
    """The connection was refused or never established: the request was not sent."""

    never_sent = True


class UpstreamFunctionError(GatewayError):
    status_code, code = 502, "function_error"


class UpstreamThrottled(GatewayError):
    status_code, code = 503, "upstream_throttled"


class CircuitOpen(GatewayError):
    status_code, code = 503, "circuit_open"


class Overloaded(GatewayError):
    status_code, code = 503, "overloaded"


class UpstreamTimeout(GatewayError):
    status_code, code = 504, "upstream_timeout"


class RequestTimeout(GatewayError):
    """The client's body stopped coming for longer than the target's timeout."""

    status_code, code = 408, "request_timeout"


class ConnectTimedOut(UpstreamTimeout):
    code = "upstream_connect_timeout"
    never_sent = True


class CommandError(Exception):
    """A command (an edit, a store read or write, a metrics read, a rollout step) could not
    do what it was asked; the message says what and where, and nothing was changed."""


class ClientDisconnected(Exception):
    """The client went away before its request body was complete: nothing to answer."""


def render(error: GatewayError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps(
        {
            "error": error.code,
            "message": error.message,
            "route": error.route,
            "target": error.target,
        }
    ).encode()
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if error.route is not None:
        headers.append((b"x-gateway-route", error.route.encode()))
    if error.target is not None:
        headers.append((b"x-gateway-target", error.target.encode()))
    if error.retry_after is not None:
        headers.append((b"retry-after", str(error.retry_after).encode()))
    headers.extend(error.headers)
    return error.status_code, headers, body


async def send_error(send: Send, error: GatewayError) -> int:
    """Answer with the error's JSON; the number of body bytes sent."""
    status, headers, body = render(error)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return len(body)
