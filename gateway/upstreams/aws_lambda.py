"""LambdaUpstream: invoke a function directly with an ALB-shaped event, map its answer back.

The function sees what an ALB in multi-value mode would send it, so a service written for
the ALB (Mangum, Powertools' ALBResolver) works behind the gateway unchanged. boto3 is
blocking: each invoke runs on a thread of a pool sized like the client's connection pool,
so the event loop never waits on it. One client per process and endpoint, made on first use.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from gateway.alb.target import target_answer, target_event
from gateway.config.model import LambdaTarget
from gateway.errors import (
    ConnectFailed,
    GatewayError,
    PayloadTooLarge,
    UpstreamFunctionError,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.headers import response_headers
from gateway.upstreams.base import Body, UpstreamRequest, UpstreamResponse

# Lambda's synchronous invoke payload limit (request and response), in bytes.
PAYLOAD_LIMIT = 6 * 1024 * 1024
POOL_SIZE = 64
THROTTLE_RETRY_AFTER = 1

_clients: dict[tuple[str | None, str | None, float], Any] = {}
_clients_lock = threading.Lock()
_executor = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="lambda-invoke")


def lambda_client(region: str | None, endpoint_url: str | None, timeout: float) -> Any:
    """One boto3 client per (region, endpoint, timeout) in this process, reused by every call."""
    key = (region, endpoint_url, timeout)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
            import boto3
            from botocore.config import Config

            config = Config(
                max_pool_connections=POOL_SIZE,
                connect_timeout=min(timeout, 5.0),
                read_timeout=timeout + 1.0,
                retries={"total_max_attempts": 1},
            )
            client = boto3.session.Session().client(
                "lambda", region_name=region, endpoint_url=endpoint_url, config=config
            )
            _clients[key] = client
        return client


class LambdaUpstream:
    def __init__(self, target: LambdaTarget) -> None:
        self.name = target.name
        self.kind = "lambda"
        self._target = target
        name, _, qualifier = _split_qualifier(target.function)
        self._function = name
        self._qualifier = qualifier or None

    async def forward(self, request: UpstreamRequest) -> UpstreamResponse:
        body = await _read_limited(request.body, self.name)
        event = target_event(request.method, request.path, request.query, request.headers, body)
        payload = json.dumps(event).encode()
        if len(payload) > PAYLOAD_LIMIT:
            raise PayloadTooLarge(
                f"request of {len(body)} bytes is over Lambda's 6 MB payload limit",
                target=self.name,
            )
        answer = await self._invoke(payload)
        status, headers, content = target_answer(answer, self._function, self.name)
        headers = response_headers(headers)
        headers = [(k, v) for k, v in headers if k != b"content-length"]
        headers.append((b"content-length", str(len(content)).encode()))
        return UpstreamResponse.complete(status, headers, content)

    async def _invoke(self, payload: bytes) -> dict[str, Any]:
        target = self._target
        loop = asyncio.get_running_loop()
        kwargs: dict[str, Any] = {"FunctionName": self._function, "Payload": payload}
        if self._qualifier:
            kwargs["Qualifier"] = self._qualifier
        try:
            # Made off the loop (loading the service model takes a while), outside the timeout.
            client = await loop.run_in_executor(
                _executor, lambda_client, target.region, target.endpoint_url, target.timeout
            )
            async with asyncio.timeout(target.timeout):
                failure, raw = await loop.run_in_executor(_executor, partial(_call, client, kwargs))
        except Exception as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from exc
        if failure:
            raise _function_error(raw, self._function, self.name)
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise UpstreamUnavailable(
                f"function {self._function!r} answered something that is not JSON",
                target=self.name,
            ) from exc
        if not isinstance(answer, dict):
            raise UpstreamUnavailable(
                f"function {self._function!r} did not answer an ALB response object",
                target=self.name,
            )
        return answer

    def _translate(self, exc: Exception) -> GatewayError | None:
        """botocore's errors as the gateway's; None for anything else (a bug: let it raise)."""
        # cold start: boto3 only where AWS is used (s3:, ssm:, lambda:, CloudWatch)
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        where = f"function {self._function!r}"
        if isinstance(exc, TimeoutError | ReadTimeoutError):
            limit = self._target.timeout
            return UpstreamTimeout(f"{where} did not answer within {limit:g}s", target=self.name)
        if isinstance(exc, NoCredentialsError):
            return UpstreamUnavailable(
                f"no AWS credentials to invoke {where} (set AWS_PROFILE or AWS_ACCESS_KEY_ID)",
                target=self.name,
            )
        if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
            return ConnectFailed(
                f"cannot reach the Lambda endpoint for {where}: {exc}", target=self.name
            )
        if isinstance(exc, ClientError):
            return _client_error(exc, where, self.name)
        if isinstance(exc, BotoCoreError):
            return UpstreamUnavailable(f"invoking {where} failed: {exc}", target=self.name)
        return None

    async def aclose(self) -> None:
        return None


def _call(client: Any, kwargs: dict[str, Any]) -> tuple[str | None, bytes]:
    """On a pool thread: invoke and read the whole answer (reading blocks too)."""
    result = client.invoke(**kwargs)
    return result.get("FunctionError"), result["Payload"].read()


def _split_qualifier(function: str) -> tuple[str, str, str]:
    """`name:alias` -> (name, ':', alias); an ARN keeps its own qualifier in FunctionName."""
    if function.startswith("arn:"):
        return function, "", ""
    return function.partition(":")


def _client_error(exc: Any, where: str, target: str) -> GatewayError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message", ""))
    if code in ("TooManyRequestsException", "ThrottlingException"):
        return UpstreamThrottled(
            f"{where} is throttled: {message}", target=target, retry_after=_retry_after(exc)
        )
    if code == "ResourceNotFoundException":
        return UpstreamUnavailable(f"{where} does not exist: {message}", target=target)
    if code == "RequestEntityTooLargeException":
        return PayloadTooLarge(f"{where} refused the payload size: {message}", target=target)
    return UpstreamUnavailable(f"invoking {where} failed with {code}: {message}", target=target)


def _retry_after(exc: Any) -> int:
    """Lambda's own Retry-After (botocore's `retryAfterSeconds`) when it sent one."""
    value = str(exc.response.get("retryAfterSeconds", "")).strip()
    return int(value) if value.isdigit() and int(value) > 0 else THROTTLE_RETRY_AFTER


def _function_error(raw: bytes, function: str, target: str) -> GatewayError:
    try:
        details = json.loads(raw)
    except ValueError:
        details = {}
    kind = details.get("errorType") if isinstance(details, dict) else None
    kind = kind if isinstance(kind, str) and kind else "Unhandled"
    return UpstreamFunctionError(f"function {function!r} failed with {kind}", target=target)


async def _read_limited(body: Body, target: str) -> bytes:
    if isinstance(body, bytes):
        return body
    chunks = bytearray()
    async for chunk in body:
        chunks += chunk
        if len(chunks) > PAYLOAD_LIMIT:
            raise PayloadTooLarge("request body is over Lambda's 6 MB payload limit", target=target)
    return bytes(chunks)
