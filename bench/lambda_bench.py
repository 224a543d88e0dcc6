"""The gateway on AWS Lambda: µs per warm ALB event, and the cold start, against references.

Loopback only: the one upstream is the repo's legacy stub under uvicorn, in a subprocess.

Warm (in this process, timeit-style: batches of thousands of events, several interleaved
rounds, medians), every row fed a single-value-header ALB event:

    gateway: no route      gateway.lambda_handler.handler; the path matches no route (404)
    gateway: echo upstream the same handler forwarding to the stub's /echo over loopback
    ALBResolver            Powertools for AWS Lambda answering with a trivial route
                           (skipped, with a note, when aws-lambda-powertools is missing)
    Mangum + raw ASGI      stock Mangum over a bare ASGI app returning a fixed JSON
    Mangum + FastAPI       stock Mangum over a FastAPI app with one route

For each it prints wall µs/event and the CPU µs/event of this process (the stub's work is
not in it), and the gateway's ratio to ALBResolver (goal <= 2x).

Cold start (fresh interpreters, several, interleaved, median): `import
gateway.lambda_handler` plus its first ALB event (GATEWAY_CONFIG names a routes.yaml with
HTTP targets only), in two rows: the first event proxied to the stub's /echo, and answered
without an upstream (no route, 404); against `import fastapi, mangum` and `import fastapi,
mangum, httpx`, and which heavy modules the handler pulled in (boto3 must not be there
without lambda: targets).

    .venv/bin/python bench/lambda_bench.py [--rounds 7] [--cold-runs 7] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import http.client
import importlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

from mangum.types import Receive, Scope, Send

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
ROUTED_PREFIX = "/echo"
ECHO_PATH = "/echo/bench/items/1"
UNROUTED_PATH = "/api/orders/1"  # no route in the bench's table; the references' route
FIXED_BODY = b'{"ok":true,"service":"bench"}'
FUNCTION_NAME = "strangler-gateway-bench"
MANGUM_RAW = "Mangum + raw ASGI"

GOAL_VS_ALB_RESOLVER = 2.0  # gateway (no route) / ALBResolver, at most
GOAL_COLD_VS_HTTPX = 1.2  # gateway cold start / import fastapi, mangum, httpx, at most
HEAVY_MODULES = (
    "boto3",
    "botocore",
    "httpx",
    "uvicorn",
    "opentelemetry.exporter",
    "prometheus_client",
)
MUST_NOT_IMPORT = ("boto3", "botocore")

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
CHILD_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.05
WARMUP_EVENTS = 200
MIN_CPUS_TO_PIN = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
HTTP_OK = 200
HTTP_NOT_FOUND = 404


class BenchError(RuntimeError):
    """A setup or measurement step failed; the message says why."""


# --------------------------------------------------------------------------- events


def alb_event(path: str) -> dict[str, Any]:
    """An ALB event as a target group without multi-value headers sends it."""
    return {
        "requestContext": {
            "elb": {
                "targetGroupArn": "arn:aws:elasticloadbalancing:eu-central-1:123456789012:"
                "targetgroup/gateway/0123456789abcdef"
            }
        },
        "httpMethod": "GET",
        "path": path,
        "queryStringParameters": {"page": "2"},
        "headers": {
            "accept": "application/json",
            "accept-encoding": "gzip, deflate",
            "host": "gateway-alb-123456789.eu-central-1.elb.amazonaws.com",
            "user-agent": "Mozilla/5.0 (bench)",
            "x-amzn-trace-id": "Root=1-62fa9327-21cdd4da4c6db451490a5fb7",
            "x-forwarded-for": "203.0.113.9",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "body": "",
        "isBase64Encoded": False,
    }


def lambda_context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name=FUNCTION_NAME,
        function_version="$LATEST",
        invoked_function_arn=f"arn:aws:lambda:eu-central-1:123456789012:function:{FUNCTION_NAME}",
        memory_limit_in_mb=1024,
        aws_request_id="00000000-0000-0000-0000-000000000000",
        log_group_name=f"/aws/lambda/{FUNCTION_NAME}",
        log_stream_name="bench",
        get_remaining_time_in_millis=lambda: 30_000,
    )


def routes_yaml(upstream_url: str) -> str:
    """HTTP targets only; nothing routes UNROUTED_PATH (no catch-all)."""
    return f"""targets:
  legacy: {{url: "{upstream_url}"}}
  orders-v2: {{url: "{upstream_url}"}}
routes:
  - name: echo
    path: {ROUTED_PREFIX}
    split: {{legacy: 90, orders-v2: 10}}
"""


# --------------------------------------------------------------------------- processes


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment without OTEL_*/GATEWAY_* (tracing stays off, the log stays on)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GATEWAY_"))}
    return {**env, **(extra or {})}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM its group (it leads one), SIGKILL if it lingers; only while not yet reaped."""
    if proc.poll() is not None:
        return
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)


def _status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection(HOST, port, timeout=2.0)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


@contextlib.contextmanager
def legacy_stub(workdir: Path, pin: Sequence[str]) -> Iterator[str]:
    """The legacy stub under uvicorn in its own session; yields its base URL."""
    port = _free_port()
    log = workdir / "legacy-stub.log"
    cmd = [
        *pin, sys.executable, "-m", "uvicorn", "legacy_stub.app:app",
        "--host", HOST, "--port", str(port), "--workers", "1",
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=bench_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while _status(port, ECHO_PATH) != HTTP_OK:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(
                    f"the legacy stub did not answer {ECHO_PATH} on port {port}; its output:\n"
                    + log.read_text(errors="replace")[-3000:]
                )
            time.sleep(POLL_INTERVAL_S)
        yield f"http://{HOST}:{port}"
    finally:
        stop(proc)


@dataclass(frozen=True)
class Pinning:
    bench_cpu: int | None
    stub: tuple[str, ...]
    note: str


def choose_pinning(enabled: bool) -> Pinning:
    """This process (and the cold-start children) on one CPU, the stub on another."""
    taskset = shutil.which("taskset")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not enabled:
        return Pinning(None, (), "pinning disabled (--no-pin)")
    if taskset is None or len(cpus) < MIN_CPUS_TO_PIN:
        return Pinning(None, (), "no pinning (needs taskset and at least 2 CPUs)")
    return Pinning(
        cpus[0],
        (taskset, "-c", str(cpus[1])),
        f"bench and cold-start children on CPU {cpus[0]}, legacy stub on CPU {cpus[1]}",
    )


# --------------------------------------------------------------------------- warm


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class Variant:
    name: str
    handler: Handler
    event: dict[str, Any]
    status: int
    number: int = 0
    wall_us: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)


async def raw_asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The smallest useful ASGI app: a fixed JSON answer."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(FIXED_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": FIXED_BODY})


def mangum_raw() -> Handler:
    from mangum import Mangum

    handler: Handler = Mangum(raw_asgi_app, lifespan="off")
    return handler


def mangum_fastapi() -> Handler:
    from fastapi import FastAPI
    from mangum import Mangum

    app = FastAPI()

    @app.get("/api/orders/{order_id}")
    async def get_order(order_id: str) -> dict[str, Any]:
        return {"ok": True, "id": order_id}

    handler: Handler = Mangum(app, lifespan="off")
    return handler


def alb_resolver() -> Handler | None:
    """Powertools' ALBResolver with one trivial route, or None when it is not installed."""
    try:
        module = importlib.import_module("aws_lambda_powertools.event_handler")
    except ImportError:
        return None
    resolver = module.ALBResolver()

    def get_order(order_id: str) -> dict[str, Any]:
        return {"ok": True, "id": order_id}

    resolver.get("/api/orders/<order_id>")(get_order)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        answer: dict[str, Any] = resolver.resolve(event, context)
        return answer

    return handler


def gateway_handler(config: Path) -> Handler:
    """Import gateway.lambda_handler as Lambda would, with GATEWAY_CONFIG set first."""
    for key in [k for k in os.environ if k.startswith(("OTEL_", "GATEWAY_"))]:
        del os.environ[key]
    os.environ["GATEWAY_CONFIG"] = str(config)
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = FUNCTION_NAME  # the log line carries EMF
    module = importlib.import_module("gateway.lambda_handler")
    handler: Handler = module.handler
    return handler


def close_gateway() -> None:
    """Close the gateway's upstream pools on its loop. Lambda never does (the environment
    is frozen, then dropped); a bench exiting with them open gets aiohttp's "Unclosed client
    session" warnings."""
    module = sys.modules.get("gateway.lambda_handler")
    if module is None:
        return
    from gateway.reload import close_all

    runtime = module.app.state.runtime.get()
    module._loop.run_until_complete(close_all([*runtime.upstreams.values(), *runtime.closeables]))


def _check(variant: Variant, answer: dict[str, Any]) -> None:
    if answer.get("statusCode") != variant.status:
        raise BenchError(
            f"{variant.name}: expected HTTP {variant.status}, got {answer.get('statusCode')}: "
            f"{str(answer)[:500]}"
        )


def _run(variant: Variant, count: int) -> tuple[float, float]:
    """Wall and CPU seconds for ``count`` events (GC on, as on Lambda; collected first)."""
    handler, event, context = variant.handler, variant.event, lambda_context()
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        handler(event, context)
    return time.perf_counter() - wall, time.process_time() - cpu


def calibrate(variant: Variant, min_events: int, batch_s: float) -> None:
    """Check the answer, warm up, and size a batch to about ``batch_s`` seconds."""
    _check(variant, variant.handler(copy.deepcopy(variant.event), lambda_context()))
    wall, _ = _run(variant, WARMUP_EVENTS)
    per_event = wall / WARMUP_EVENTS
    variant.number = max(min_events, int(batch_s / per_event) if per_event else min_events)


def measure_warm(variants: list[Variant], rounds: int, log_to: Path) -> None:
    """Round after round over the variants (order reversed every other round)."""
    with log_to.open("a") as log, contextlib.redirect_stdout(log):
        for round_no in range(rounds):
            order = variants if round_no % 2 == 0 else variants[::-1]
            for variant in order:
                wall, cpu = _run(variant, variant.number)
                variant.wall_us.append(wall / variant.number * 1e6)
                variant.cpu_us.append(cpu / variant.number * 1e6)
        for variant in variants:  # the state after all the rounds still answers right
            _check(variant, variant.handler(copy.deepcopy(variant.event), lambda_context()))


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _spread(values: Sequence[float]) -> float | None:
    middle = statistics.median(values) if len(values) > 1 else 0.0
    return (max(values) - min(values)) / 2 / middle if middle else None


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def warm_table(variants: Sequence[Variant], reference: Variant | None) -> str:
    ref_wall = _median(reference.wall_us) if reference else None
    ref_cpu = _median(reference.cpu_us) if reference else None
    header = (
        f"{'variant':<24} {'events':>6} {'wall µs/event':>13} {'±':>4} "
        f"{'cpu µs/event':>12} {'wall÷ALBResolver':>16} {'cpu÷ALBResolver':>15}"
    )
    lines = [header, "-" * len(header)]
    for v in variants:
        wall, cpu = _median(v.wall_us), _median(v.cpu_us)
        spread = _spread(v.wall_us)
        lines.append(
            f"{v.name:<24} {v.number:>6} {_fmt(wall, '13.1f')} "
            f"{_fmt(spread and spread * 100, '3.0f', '%'):>4} {_fmt(cpu, '12.1f')} "
            f"{_fmt(wall / ref_wall if wall and ref_wall else None, '.2f', 'x'):>16} "
            f"{_fmt(cpu / ref_cpu if cpu and ref_cpu else None, '.2f', 'x'):>15}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- cold


_COLD_GATEWAY = """
import time
t0 = time.perf_counter()
import gateway.lambda_handler as entry
t1 = time.perf_counter()
import json, sys, types
event = json.loads(sys.argv[2])
context = types.SimpleNamespace(function_name="bench", aws_request_id="cold")
t2 = time.perf_counter()
answer = entry.handler(event, context)
t3 = time.perf_counter()
heavy = json.loads(sys.argv[3])
loaded = {name: any(m == name or m.startswith(name + ".") for m in sys.modules) for name in heavy}
with open(sys.argv[1], "w") as out:
    json.dump({"import_s": t1 - t0, "first_event_s": t3 - t2, "status": answer["statusCode"],
               "modules": len(sys.modules), "heavy": loaded}, out)
"""

_COLD_IMPORTS = """
import time
t0 = time.perf_counter()
import {modules}
t1 = time.perf_counter()
import json, sys
with open(sys.argv[1], "w") as out:
    json.dump({{"import_s": t1 - t0, "first_event_s": 0.0, "modules": len(sys.modules)}}, out)
"""


@dataclass
class ColdVariant:
    name: str
    code: str
    args: tuple[str, ...] = ()
    status: int | None = None  # what the first event must answer (gateway rows)
    total_ms: list[float] = field(default_factory=list)
    import_ms: list[float] = field(default_factory=list)
    first_event_ms: list[float] = field(default_factory=list)
    process_ms: list[float] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)


COLD_ECHO = "gateway + 1st event (echo upstream)"
COLD_NO_ROUTE = "gateway + 1st event (no route 404)"
COLD_GATEWAYS = (COLD_ECHO, COLD_NO_ROUTE)
COLD_REFERENCES = ("import fastapi, mangum", "import fastapi, mangum, httpx")


def cold_variants() -> list[ColdVariant]:
    """The two gateway rows first: the first event proxied to the stub (a connection to
    open, the HTTP client's first use), and answered without any upstream (a 404)."""
    heavy = json.dumps(HEAVY_MODULES)
    return [
        ColdVariant(COLD_ECHO, _COLD_GATEWAY, (json.dumps(alb_event(ECHO_PATH)), heavy), HTTP_OK),
        ColdVariant(
            COLD_NO_ROUTE,
            _COLD_GATEWAY,
            (json.dumps(alb_event(UNROUTED_PATH)), heavy),
            HTTP_NOT_FOUND,
        ),
        ColdVariant("import fastapi, mangum", _COLD_IMPORTS.format(modules="fastapi, mangum")),
        ColdVariant(
            "import fastapi, mangum, httpx",
            _COLD_IMPORTS.format(modules="fastapi, mangum, httpx"),
        ),
    ]


def run_cold(variant: ColdVariant, env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """One fresh interpreter; what it measured, plus its whole lifetime as seen from here."""
    out = workdir / "cold.json"
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", variant.code, str(out), *variant.args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # the gateway's access log line
        stderr=subprocess.PIPE,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or not out.exists():
        raise BenchError(
            f"cold start of {variant.name!r} failed ({done.returncode}):\n"
            + done.stderr.decode(errors="replace")[-3000:]
        )
    result: dict[str, Any] = json.loads(out.read_text())
    result["process_s"] = elapsed
    return result


def measure_cold(variants: list[ColdVariant], runs: int, config: Path, workdir: Path) -> None:
    """One discarded run each (page cache, .pyc files), then ``runs`` interleaved rounds."""
    env = bench_env({"GATEWAY_CONFIG": str(config), "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME})
    for variant in variants:
        run_cold(variant, env, workdir)
    for round_no in range(runs):
        for variant in variants if round_no % 2 == 0 else variants[::-1]:
            result = run_cold(variant, env, workdir)
            if variant.status is not None and result.get("status") != variant.status:
                raise BenchError(
                    f"{variant.name}: first event answered {result.get('status')}, "
                    f"not {variant.status}"
                )
            variant.import_ms.append(result["import_s"] * 1e3)
            variant.first_event_ms.append(result["first_event_s"] * 1e3)
            variant.total_ms.append((result["import_s"] + result["first_event_s"]) * 1e3)
            variant.process_ms.append(result["process_s"] * 1e3)
            variant.last = result


def cold_table(variants: Sequence[ColdVariant]) -> str:
    header = (
        f"{'variant':<36} {'import ms':>9} {'1st event ms':>12} {'total ms':>8} {'±':>4} "
        f"{'process ms':>10} {'modules':>7}"
    )
    lines = [header, "-" * len(header)]
    for v in variants:
        spread = _spread(v.total_ms)
        lines.append(
            f"{v.name:<36} {_fmt(_median(v.import_ms), '9.1f')} "
            f"{_fmt(_median(v.first_event_ms), '12.1f')} {_fmt(_median(v.total_ms), '8.1f')} "
            f"{_fmt(spread and spread * 100, '3.0f', '%'):>4} "
            f"{_fmt(_median(v.process_ms), '10.1f')} {v.last.get('modules', '-'):>7}"
        )
    return "\n".join(lines)


def cold_ratio(gateway: ColdVariant, reference: ColdVariant) -> float | None:
    """Median over rounds of gateway total / reference total (same round: seconds apart)."""
    ratios = [g / r for g, r in zip(gateway.total_ms, reference.total_ms, strict=True) if r]
    return _median(ratios)


# --------------------------------------------------------------------------- main


@dataclass(frozen=True)
class Options:
    rounds: int
    min_events: int
    batch_s: float
    cold_runs: int
    json_path: Path | None
    pin: bool
    warm: bool
    cold: bool


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description="The gateway's Lambda entry: µs per warm ALB event and cold start, "
        "against ALBResolver, Mangum and bare imports."
    )
    parser.add_argument("--rounds", type=int, default=7, help="warm rounds (median)")
    parser.add_argument("--min-events", type=int, default=1000, help="events per warm batch")
    parser.add_argument(
        "--batch-seconds", type=float, default=0.25, help="grow batches to about this long"
    )
    parser.add_argument("--cold-runs", type=int, default=7, help="fresh interpreters each")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--skip-warm", action="store_true", help="cold start only")
    parser.add_argument("--skip-cold", action="store_true", help="warm events only")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.min_events < 1 or args.cold_runs < 1 or args.batch_seconds <= 0:
        parser.error("--rounds, --min-events, --cold-runs and --batch-seconds must be positive")
    return Options(
        rounds=args.rounds,
        min_events=args.min_events,
        batch_s=args.batch_seconds,
        cold_runs=args.cold_runs,
        json_path=args.json,
        pin=not args.no_pin,
        warm=not args.skip_warm,
        cold=not args.skip_cold,
    )


def print_warm_ratios(variants: Sequence[Variant], reference: Variant | None) -> None:
    """The goal compares CPU per event: on a shared 2-core box, wall time mostly measures
    the neighbours (this process loses the CPU mid-batch), CPU time much less so."""
    if reference is None:
        print("gateway / ALBResolver: skipped (aws-lambda-powertools is not installed)")
        return
    ref_cpu, ref_wall = _median(reference.cpu_us), _median(reference.wall_us)
    no_route, echo = variants[0], variants[1]
    mangum = next((v for v in variants if v.name == MANGUM_RAW), None)
    mangum_cpu = _median(mangum.cpu_us) if mangum else None
    if mangum_cpu and ref_cpu:
        print(
            f"floor: Mangum + raw ASGI / ALBResolver: CPU {mangum_cpu / ref_cpu:.2f}x "
            "(the adapter and its event loop alone, before any gateway code)"
        )
    cpu, wall = _median(no_route.cpu_us), _median(no_route.wall_us)
    if cpu and ref_cpu and wall and ref_wall:
        ratio = cpu / ref_cpu
        verdict = "ok" if ratio <= GOAL_VS_ALB_RESOLVER else "ABOVE"
        print(
            f"gateway (no route) / ALBResolver: CPU {ratio:.2f}x {verdict} "
            f"(goal <= {GOAL_VS_ALB_RESOLVER:g}x); wall {wall / ref_wall:.2f}x"
        )
    echo_cpu = _median(echo.cpu_us)
    if echo_cpu and ref_cpu:
        print(
            f"gateway (echo upstream, this process's CPU) / ALBResolver: {echo_cpu / ref_cpu:.2f}x"
        )


def warm_section(options: Options, config: Path, workdir: Path) -> dict[str, Any]:
    gateway = gateway_handler(config)
    variants = [
        Variant("gateway: no route (404)", gateway, alb_event(UNROUTED_PATH), HTTP_NOT_FOUND),
        Variant("gateway: echo upstream", gateway, alb_event(ECHO_PATH), HTTP_OK),
    ]
    resolver = alb_resolver()
    reference = None
    if resolver is None:
        print(
            "note: aws-lambda-powertools is not installed, so the ALBResolver row is skipped "
            "(for the bench only: .venv/bin/pip install aws-lambda-powertools)",
            flush=True,
        )
    else:
        reference = Variant("ALBResolver (Powertools)", resolver, alb_event(UNROUTED_PATH), HTTP_OK)
        variants.append(reference)
    variants += [
        Variant(MANGUM_RAW, mangum_raw(), alb_event(UNROUTED_PATH), HTTP_OK),
        Variant("Mangum + FastAPI route", mangum_fastapi(), alb_event(UNROUTED_PATH), HTTP_OK),
    ]
    log = workdir / "access.log"
    with log.open("a") as out, contextlib.redirect_stdout(out):
        for variant in variants:
            calibrate(variant, options.min_events, options.batch_s)
    per_round = sum(v.number for v in variants)
    print(f"warm: {options.rounds} rounds of {per_round} events", flush=True)
    measure_warm(variants, options.rounds, log)
    print()
    print(
        f"warm ALB events, medians over {options.rounds} interleaved rounds "
        "(± half the range; cpu = this process only, not the stub):"
    )
    print(warm_table(variants, reference))
    print_warm_ratios(variants, reference)
    return {
        v.name: {
            "events_per_batch": v.number,
            "wall_us": v.wall_us,
            "cpu_us": v.cpu_us,
            "wall_us_median": _median(v.wall_us),
            "cpu_us_median": _median(v.cpu_us),
        }
        for v in variants
    }


def cold_section(options: Options, config: Path, workdir: Path) -> dict[str, Any]:
    variants = cold_variants()
    print(
        f"\ncold start: {options.cold_runs} fresh interpreters each (+1 discarded), interleaved",
        flush=True,
    )
    measure_cold(variants, options.cold_runs, config, workdir)
    print(cold_table(variants))
    by_name = {v.name: v for v in variants}
    ratios: dict[str, dict[str, float | None]] = {}
    for gateway_name in COLD_GATEWAYS:
        gateway = by_name[gateway_name]
        ratios[gateway_name] = {}
        parts: list[str] = []
        for reference_name in COLD_REFERENCES:
            ratio = cold_ratio(gateway, by_name[reference_name])
            ratios[gateway_name][reference_name] = ratio
            text = f"/ ({reference_name.removeprefix('import ')}) {_fmt(ratio, '.2f', 'x')}"
            if reference_name == COLD_REFERENCES[-1] and ratio is not None:
                text += " ok" if ratio <= GOAL_COLD_VS_HTTPX else " ABOVE"
            parts.append(text)
        print(f"{gateway_name}: {'; '.join(parts)}")
    print(f"(goal: gateway / (fastapi, mangum, httpx) <= {GOAL_COLD_VS_HTTPX:g}x)")
    for gateway_name in COLD_GATEWAYS:
        heavy: dict[str, bool] = by_name[gateway_name].last.get("heavy", {})
        listed = ", ".join(f"{name} {'YES' if on else 'no'}" for name, on in heavy.items())
        print(f"heavy modules imported, {gateway_name.removeprefix('gateway + ')}: {listed}")
        leaked = [name for name in MUST_NOT_IMPORT if heavy.get(name)]
        if leaked:
            print(
                f"PROBLEM: {', '.join(leaked)} imported although the config has no lambda: targets"
            )
    return {
        v.name: {
            "import_ms": v.import_ms,
            "first_event_ms": v.first_event_ms,
            "total_ms": v.total_ms,
            "process_ms": v.process_ms,
            "total_ms_median": _median(v.total_ms),
            "last": v.last,
        }
        for v in variants
    } | {"ratios": ratios}


def run(options: Options, workdir: Path) -> dict[str, Any]:
    pinning = choose_pinning(options.pin)
    print(f"lambda bench: pinning: {pinning.note}", flush=True)
    if pinning.bench_cpu is not None:
        os.sched_setaffinity(0, {pinning.bench_cpu})
    results: dict[str, Any] = {
        "settings": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
            "pinning": pinning.note,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    }
    with legacy_stub(workdir, pinning.stub) as stub_url:
        config = workdir / "routes.yaml"
        config.write_text(routes_yaml(stub_url))
        print(f"upstream: legacy stub on {stub_url}; routes.yaml: {config}", flush=True)
        if options.cold:  # fresh interpreters: what this process imported does not matter
            results["cold"] = cold_section(options, config, workdir)
        if options.warm:
            try:
                results["warm"] = warm_section(options, config, workdir)
            finally:
                close_gateway()
    return results


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds: the stub gets stopped


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGHUP, _exit_on_sigterm)
    try:
        with tempfile.TemporaryDirectory(prefix="lambda-bench-") as tmp:
            results = run(options, Path(tmp))
    except KeyboardInterrupt:
        print("\ninterrupted: the stub was stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {options.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
