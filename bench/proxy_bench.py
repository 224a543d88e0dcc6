"""Reverse-proxy bench: the gateway against nginx and a raw aiohttp ASGI proxy.

Everything runs on loopback against ONE fast upstream (nginx returning a small JSON body):

    direct           the upstream itself
    nginx            nginx as a keep-alive reverse proxy (the non-Python reference)
    raw              bench/raw_proxy.py, a bare ASGI proxy on aiohttp (the Python ceiling)
    gateway          gateway.app:app with a generated routes.yaml (split + routing on) and its
                     per-request JSON access log ON, as in production (stdout to a file)
    gateway-nolog    the same with GATEWAY_ACCESS_LOG=off: what the log line costs
    gateway+tracing  the same as `gateway` with tracing at 100% sampling, exporting OTLP/HTTP
                     to bench/otlp_sink.py (its own process, so its CPU is not billed here)
    gateway+features gateway+tracing with every protection configured on the route and its
                     targets (auth by API key, rate, limits, sticky, fallback, retry, breaker,
                     concurrency limit, connect timeout, trusted proxies), none refusing:
                     every answer must be a 200 or the run fails

Each target is hit with ``wrk -t1 -cN --latency``. After one warm-up per target the runs
are interleaved (round after round of every target, the order reversed every other round)
and the table shows medians over rounds; ratios are medians of the ratios taken within each
round, so the two sides of a ratio are always seconds apart. Besides req/s, p50 and p99 it
reads the CPU time (utime+stime from /proc) the server under test used during each run,
divided by the requests wrk completed: µs of CPU per request, far less sensitive to a noisy
machine than req/s.  Every process it starts runs in its own process group and is stopped on
exit, Ctrl-C or error.

    .venv/bin/python bench/proxy_bench.py [--duration 4] [--rounds 3] [--connections 16,64]
        [--only gateway,raw,...] [--json FILE] [--no-pin]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
HOST = "127.0.0.1"
REQUEST_PATH = "/api/orders/1"
UPSTREAM_BODY = '{"ok":true,"service":"upstream","items":[1,2,3]}'
GATEWAY = "gateway"
GATEWAY_NOLOG = "gateway-nolog"
GATEWAY_TRACING = "gateway+tracing"
GATEWAY_FEATURES = "gateway+features"
TARGETS = ("direct", "nginx", "raw", GATEWAY, GATEWAY_NOLOG, GATEWAY_TRACING, GATEWAY_FEATURES)
TRACING_ENV = {
    "GATEWAY_ACCESS_LOG": "on",
    "OTEL_TRACES_SAMPLER": "always_on",
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_SERVICE_NAME": "strangler-gateway-bench",
    # OTEL_EXPORTER_OTLP_ENDPOINT is the sink's URL, added once the sink is up.
}
GATEWAY_ENV = {
    GATEWAY: {"GATEWAY_ACCESS_LOG": "on"},
    GATEWAY_NOLOG: {"GATEWAY_ACCESS_LOG": "off"},
    GATEWAY_TRACING: TRACING_ENV,
    GATEWAY_FEATURES: TRACING_ENV,
}
TRACED = (GATEWAY_TRACING, GATEWAY_FEATURES)  # each gets an OTLP sink of its own
# gateway+features authenticates with an API key: wrk sends it, the config holds its hash.
API_KEY_HEADER = "x-api-key"
API_KEY = "proxy-bench-0f3c9a7e5d2b4c18"
REQUEST_HEADERS: dict[str, tuple[tuple[str, str], ...]] = {
    GATEWAY_FEATURES: ((API_KEY_HEADER, API_KEY),),
}
HTTP_UNAUTHORIZED = 401
# Inherited variables that would change what a variant measures: every variant sets its own.
SCRUBBED_ENV_PREFIXES = ("OTEL_", "GATEWAY_", "PROMETHEUS_MULTIPROC_DIR")
SCRUBBED_ENV = ("AWS_LAMBDA_FUNCTION_NAME",)
GOAL_RATIO = 0.8  # gateway / raw
GOAL_TRACING = 0.85  # gateway+tracing / gateway
GOAL_FEATURES = 0.7  # gateway+features / raw
SPANS_PER_REQUEST = 2  # a server span and a client span
SPAN_SETTLE_S = 7.0  # BatchSpanProcessor exports a partial batch every 5 s

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 2.0
POLL_INTERVAL_S = 0.05
WRK_GRACE_S = 20
HTTP_OK = 200
MIN_CPUS_TO_PIN = 2  # one for the server under test, one for wrk
NGINX_MIN_FOR_E_FLAG = (1, 19, 5)  # `nginx -e` (error log path) appeared in 1.19.5
LOG_TAIL_CHARS = 3000
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
NAME_WIDTH = max(len(name) for name in TARGETS)


class BenchError(RuntimeError):
    """A setup or measurement step failed; the message says why."""


# --------------------------------------------------------------------------- processes


@dataclass
class Server:
    """A process started by the bench, alone in its own process group."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        return ""

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL it if it lingers.

        The group is signalled only while its leader is not yet reaped, so the id cannot have
        been reused by some other process.  nginx's master waits for its workers, uvicorn
        runs a single process, so nothing of ours outlives the leader.
        """
        if self.proc.poll() is not None:
            return
        _signal_group(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def group_cpu_seconds(pgid: int) -> float | None:
    """CPU seconds (user + system) used so far by the live processes of group ``pgid``.

    /proc/PID/stat of a process counts all its threads (the span exporter's thread too);
    nginx's workers are separate processes of the same group, hence the sum over the group.
    A member that exits moves its time into its parent's cutime/cstime, which are summed
    too, so the total never goes backwards. None where there is no /proc.
    """
    if not (PROC / "self" / "stat").exists():
        return None
    ticks = 0
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # Fields after "(comm)": state ppid pgrp ... utime(14) stime(15) cutime(16) cstime(17)
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLOCK_TICKS


def spawn(name: str, cmd: Sequence[str], port: int, log_dir: Path, env: dict[str, str]) -> Server:
    """Start a server in a new session (so Ctrl-C reaches only us; we stop it ourselves)."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(cmd),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name=name, port=port, proc=proc, log=log)


Headers = tuple[tuple[str, str], ...]


def _probe(port: int, headers: Headers = ()) -> int | None:
    """HTTP status of ``GET REQUEST_PATH``, or None while nothing answers."""
    conn = http.client.HTTPConnection(HOST, port, timeout=PROBE_TIMEOUT_S)
    try:
        conn.request("GET", REQUEST_PATH, headers=dict(headers))
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def wait_ready(server: Server, headers: Headers = (), timeout: float = START_TIMEOUT_S) -> int:
    """Block until ``server`` answers HTTP; return the status of the probe request."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = server.proc.poll()
        if code is not None:
            raise BenchError(
                f"{server.name} exited with code {code} before answering on port "
                f"{server.port}; its output:\n{server.log_tail()}"
            )
        status = _probe(server.port, headers)
        if status is not None:
            return status
        time.sleep(POLL_INTERVAL_S)
    raise BenchError(
        f"{server.name} did not answer on {HOST}:{server.port} within {timeout:.0f}s; "
        f"its output:\n{server.log_tail()}"
    )


# --------------------------------------------------------------------------- pinning


@dataclass(frozen=True)
class Pinning:
    """argv prefixes placing the server under test and wrk on separate CPUs."""

    server: tuple[str, ...]
    client: tuple[str, ...]
    note: str


def choose_pinning(enabled: bool) -> Pinning:
    """Server under test on the first allowed CPU, wrk on the second, upstream unpinned.

    With 2 cores and 3 busy processes (wrk, proxy, upstream) someone has to share.  A Python
    proxy is single-threaded and CPU-bound, so it gets a core of its own and wrk (one thread)
    the other: neither steals from the other, and the numbers say what one proxy core does.
    The upstream nginx is so cheap per request that it is left unpinned: the scheduler puts
    it on whichever core has idle time, and pinning it next to either side would just make
    that side pay for it deterministically.
    """
    taskset = shutil.which("taskset")
    cpus = sorted(os.sched_getaffinity(0))
    if not enabled:
        return Pinning((), (), "pinning disabled (--no-pin)")
    if taskset is None or len(cpus) < MIN_CPUS_TO_PIN:
        return Pinning((), (), "no pinning (needs taskset and at least 2 CPUs)")
    server_cpu, client_cpu = str(cpus[0]), str(cpus[1])
    return Pinning(
        server=(taskset, "-c", server_cpu),
        client=(taskset, "-c", client_cpu),
        note=f"server under test on CPU {server_cpu}, wrk on CPU {client_cpu}, upstream unpinned",
    )


# --------------------------------------------------------------------------- nginx


def find_nginx() -> str | None:
    """nginx lives in /usr/sbin, which is not on every user's PATH."""
    found = shutil.which("nginx")
    if found:
        return found
    fallback = Path("/usr/sbin/nginx")
    return str(fallback) if os.access(fallback, os.X_OK) else None


def _nginx_version(nginx: str) -> tuple[int, ...]:
    done = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=10, check=False)
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", done.stderr + done.stdout)
    return tuple(int(part) for part in match.groups()) if match else (0, 0, 0)


def _nginx_conf(prefix: Path, servers: str) -> str:
    """A self-contained nginx.conf: pid, logs and temp files all inside ``prefix``."""
    temps = "\n".join(
        f"    {kind}_temp_path {prefix / (kind + '_temp')};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
{temps}
{servers}
}}
"""


def upstream_server_block(port: int) -> str:
    return f"""    server {{
        listen {HOST}:{port};
        default_type application/json;
        location / {{ return 200 '{UPSTREAM_BODY}'; }}
    }}"""


def proxy_server_block(port: int, upstream_port: int) -> str:
    return f"""    upstream backend {{
        server {HOST}:{upstream_port};
        keepalive 128;
        keepalive_requests 1000000;
    }}
    server {{
        listen {HOST}:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""


@dataclass(frozen=True)
class Nginx:
    binary: str
    has_e_flag: bool

    def command(self, prefix: Path, servers: str) -> list[str]:
        """Write ``prefix/nginx.conf`` and return the foreground command running it."""
        prefix.mkdir(parents=True)
        prefix.chmod(0o755)  # workers drop to `nobody` when started as root
        conf = prefix / "nginx.conf"
        conf.write_text(_nginx_conf(prefix, servers))
        cmd = [self.binary, "-p", f"{prefix}/", "-c", str(conf), "-g", "daemon off;"]
        if self.has_e_flag:  # otherwise nginx first tries the distro's /var/log/nginx
            cmd[1:1] = ["-e", str(prefix / "error.log")]
        return cmd


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class WrkResult:
    rps: float
    requests: int  # completed
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors + non-2xx/3xx answers
    non_2xx: int  # wrk's "Non-2xx or 3xx responses" (it counts statuses >= 400)


@dataclass(frozen=True)
class Measurement:
    name: str
    connections: int
    round: int
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int
    cpu_us: float | None  # CPU of the server under test per completed request, in µs


_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_wrk(name: str, output: str) -> WrkResult:
    """Requests/sec, completed requests, p50/p99 (``--latency``) and errors from wrk's text."""
    rps = _RPS.search(output)
    requests = _REQUESTS.search(output)
    percentiles = {
        pct: float(value) * _TO_MS[unit] for pct, value, unit in _PERCENTILE.findall(output)
    }
    if rps is None or requests is None or {"50", "99"} - percentiles.keys():
        raise BenchError(f"cannot parse wrk output for {name}:\n{output}")
    non_2xx = _NON_2XX.search(output)
    socket_errors = _SOCKET_ERRORS.search(output)
    bad_answers = int(non_2xx.group(1)) if non_2xx else 0
    errors = bad_answers
    if socket_errors:
        errors += sum(int(count) for count in socket_errors.groups())
    return WrkResult(
        rps=float(rps.group(1)),
        requests=int(requests.group(1)),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        errors=errors,
        non_2xx=bad_answers,
    )


@dataclass(frozen=True)
class Wrk:
    binary: str
    pin: tuple[str, ...]

    def run(self, port: int, connections: int, seconds: int, headers: Headers = ()) -> str:
        url = f"http://{HOST}:{port}{REQUEST_PATH}"
        cmd = [*self.pin, self.binary, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
        for name, value in headers:
            cmd += ["-H", f"{name}: {value}"]
        cmd.append(url)
        # subprocess.run kills wrk itself on timeout, Ctrl-C or any other exception.
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + WRK_GRACE_S, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
        return done.stdout


# --------------------------------------------------------------------------- targets


def _uvicorn(app: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", app,
        "--workers", "1", "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
        # Both proxies keep X-Forwarded-For themselves; the gateway passes the upstream's
        # Date and Server through, so uvicorn must not add its own.
        "--no-proxy-headers", "--no-server-header", "--no-date-header",
        "--host", HOST, "--port", str(port),
    ]  # fmt: skip


def gateway_routes(upstream_url: str) -> str:
    """routes.yaml: two targets on the same upstream, one split route, one catch-all."""
    return f"""targets:
  legacy: {{url: {upstream_url}}}
  orders-v2: {{url: {upstream_url}}}
routes:
  - name: orders
    path: /api/orders
    split: {{legacy: 90, orders-v2: 10}}
  - name: everything-else
    path: /
    target: legacy
"""


def api_key_hash(key: str) -> str:
    """What routes.yaml stores for an API key (as `gateway hash-key` prints it)."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def gateway_features_routes(upstream_url: str) -> str:
    """The same targets and routes, with every protection on the route and its targets.

    Each is configured so that it never refuses under the bench: a concurrency limit above
    wrk's connections, a rate no client reaches, the key wrk sends, a body limit a GET
    never meets. The upstream always answers 200, so retry, fallback and breaker stay idle
    (their bookkeeping is what is measured); wrk sends no x-user-id, so picks are random.
    """
    protection = (
        "    timeout: 10s\n"
        "    connect_timeout: 1s\n"
        "    max_concurrency: 256\n"
        "    queue_timeout: 1s\n"
        "    retry: {attempts: 2, on: [503]}\n"
        "    breaker: {}\n"
    )
    return f"""trusted_proxies: [127.0.0.1]
targets:
  legacy:
    url: {upstream_url}
{protection}  orders-v2:
    url: {upstream_url}
{protection}routes:
  - name: orders
    path: /api/orders
    split: {{legacy: 90, orders-v2: 10}}
    sticky: header:x-user-id
    fallback: legacy
    fallback_on: [404]
    rate: 1000000/s
    burst: 1000000
    auth:
      api_keys: {{header: {API_KEY_HEADER}, keys: ["{api_key_hash(API_KEY)}"]}}
    limits: {{max_body: 1MB}}
  - name: everything-else
    path: /
    target: legacy
"""


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment minus what would switch gateway features on or off, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(SCRUBBED_ENV_PREFIXES) and key not in SCRUBBED_ENV
    }
    return {**env, **(extra or {})}


def _get_json(port: int, path: str) -> dict[str, object]:
    conn = http.client.HTTPConnection(HOST, port, timeout=PROBE_TIMEOUT_S)
    try:
        conn.request("GET", path)
        payload = json.loads(conn.getresponse().read())
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise BenchError(f"GET {path} on port {port} failed: {exc}") from exc
    finally:
        conn.close()
    if not isinstance(payload, dict):
        raise BenchError(f"GET {path} on port {port}: not a JSON object")
    return payload


@dataclass
class Bench:
    """Starts what the selected targets need; every start is undone by ``stack``."""

    stack: contextlib.ExitStack
    workdir: Path
    pinning: Pinning
    nginx: Nginx | None
    upstream: Server | None = None
    sinks: dict[str, Server] = field(default_factory=dict)  # by the traced variant's name

    def _launch(
        self, name: str, cmd: Sequence[str], port: int, env: dict[str, str] | None = None
    ) -> Server:
        server = spawn(name, cmd, port, self.workdir, clean_env(env))
        self.stack.callback(server.stop)
        status = wait_ready(server, REQUEST_HEADERS.get(name, ()))
        if status != HTTP_OK:
            print(f"  warning: {name} answers {REQUEST_PATH} with HTTP {status}", flush=True)
        return server

    def start_upstream(self) -> str:
        """Start the upstream every target talks to; return what kind it is."""
        port = _free_port()
        if self.nginx is None:
            cmd = [sys.executable, str(BENCH_DIR / "tiny_upstream.py"), "--port", str(port)]
            kind = "bench/tiny_upstream.py (Python fallback: nginx is not installed)"
        else:
            cmd = self.nginx.command(self.workdir / "upstream", upstream_server_block(port))
            kind = "nginx"
        self.upstream = self._launch("upstream", cmd, port)
        return kind

    def start_sink(self, variant: str) -> str:
        """Start an OTLP/HTTP sink for ``variant`` alone (unpinned, like the upstream), so
        each traced variant's spans are counted apart; return its base URL."""
        port = _free_port()
        cmd = [sys.executable, str(BENCH_DIR / "otlp_sink.py"), "--port", str(port)]
        self.sinks[variant] = self._launch(f"otlp-sink-{variant}", cmd, port)
        return f"http://{HOST}:{port}"

    def sink_counts(self, variant: str) -> dict[str, object]:
        sink = self.sinks.get(variant)
        if sink is None:
            raise BenchError(f"the OTLP sink of {variant} is not started")
        return _get_json(sink.port, "/stats")

    @property
    def upstream_port(self) -> int:
        if self.upstream is None:
            raise BenchError("the upstream is not started")
        return self.upstream.port

    @property
    def upstream_url(self) -> str:
        return f"http://{HOST}:{self.upstream_port}"

    def start_target(self, name: str) -> Server:
        """Start (or, for ``direct``, reuse) the server measured as ``name``."""
        if name == "direct":
            if self.upstream is None:
                raise BenchError("the upstream is not started")
            return self.upstream
        port = _free_port()
        pin = self.pinning.server
        if name == "nginx":
            if self.nginx is None:
                raise BenchError("nginx is not installed")
            servers = proxy_server_block(port, self.upstream_port)
            return self._launch(
                name, [*pin, *self.nginx.command(self.workdir / "proxy", servers)], port
            )
        if name == "raw":
            env = {"RAW_PROXY_UPSTREAM": self.upstream_url}
            return self._launch(name, [*pin, *_uvicorn("bench.raw_proxy:app", port)], port, env)
        if name == GATEWAY_FEATURES:
            routes = self.workdir / "routes-features.yaml"
            routes.write_text(gateway_features_routes(self.upstream_url))
        else:
            routes = self.workdir / "routes.yaml"
            routes.write_text(gateway_routes(self.upstream_url))
        env = {"GATEWAY_CONFIG": str(routes), **GATEWAY_ENV[name]}
        if name in TRACED:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.start_sink(name)
        server = self._launch(name, [*pin, *_uvicorn("gateway.app:app", port)], port, env)
        if name == GATEWAY_FEATURES:
            # Proof that the protections are in force: without the key, auth refuses.
            status = _probe(port)
            if status != HTTP_UNAUTHORIZED:
                raise BenchError(
                    f"{name}: a request without the API key got HTTP {status}, not 401"
                )
        return server


# --------------------------------------------------------------------------- report


def _median(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def _runs(results: Iterable[Measurement], name: str, conns: int) -> list[Measurement]:
    return [m for m in results if m.name == name and m.connections == conns]


def paired_ratio(
    results: Sequence[Measurement], name: str, reference: str, conns: int, *, cpu: bool = False
) -> float | None:
    """Median over rounds of ``name`` / ``reference`` measured in the same round.

    req/s: name's req/s over the reference's.  ``cpu``: name's CPU per request over the
    reference's (a cost: above 1 means name spends more CPU on a request).
    """
    reference_by_round = {m.round: m for m in _runs(results, reference, conns)}
    ratios: list[float | None] = []
    for m in _runs(results, name, conns):
        ref = reference_by_round.get(m.round)
        if ref is None:
            continue
        if cpu:
            ratios.append(m.cpu_us / ref.cpu_us if m.cpu_us and ref.cpu_us else None)
        else:
            ratios.append(m.rps / ref.rps if ref.rps else None)
    return _median(ratios)


def _spread(values: Sequence[float]) -> float | None:
    """Half the range over rounds, relative to the median (how noisy the row was)."""
    middle = statistics.median(values) if len(values) > 1 else 0.0
    return (max(values) - min(values)) / 2 / middle if middle else None


@dataclass(frozen=True)
class Row:
    """One target at one connection count, summarised over the rounds."""

    name: str
    connections: int
    rounds: int
    rps: float | None
    rps_spread: float | None
    p50_ms: float | None
    p99_ms: float | None
    cpu_us: float | None
    cpu_spread: float | None
    vs_nginx: float | None
    vs_raw: float | None
    cpu_vs_raw: float | None
    errors: int


def summarise(results: Sequence[Measurement], connections: Sequence[int]) -> list[Row]:
    rows: list[Row] = []
    for name in TARGETS:
        for conns in connections:
            runs = _runs(results, name, conns)
            if not runs:
                continue
            cpus = [m.cpu_us for m in runs if m.cpu_us is not None]
            rows.append(
                Row(
                    name=name,
                    connections=conns,
                    rounds=len(runs),
                    rps=_median(m.rps for m in runs),
                    rps_spread=_spread([m.rps for m in runs]),
                    p50_ms=_median(m.p50_ms for m in runs),
                    p99_ms=_median(m.p99_ms for m in runs),
                    cpu_us=_median(cpus),
                    cpu_spread=_spread(cpus),
                    vs_nginx=paired_ratio(results, name, "nginx", conns),
                    vs_raw=paired_ratio(results, name, "raw", conns),
                    cpu_vs_raw=paired_ratio(results, name, "raw", conns, cpu=True),
                    errors=sum(m.errors for m in runs),
                )
            )
    return rows


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def table(rows: Sequence[Row]) -> str:
    header = (
        f"{'name':<{NAME_WIDTH}} {'conns':>5} {'req/s':>8} {'±':>4} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'vs nginx':>8} {'vs raw':>7} {'cpu µs/req':>10} {'±':>4} "
        f"{'cpu÷raw':>7} {'errors':>6}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.name:<{NAME_WIDTH}} {row.connections:>5} {_fmt(row.rps, '8.0f')} "
            f"{_pct(row.rps_spread):>4} "
            f"{_fmt(row.p50_ms, '7.2f')} {_fmt(row.p99_ms, '7.2f')} "
            f"{_fmt(row.vs_nginx, '.2f', 'x'):>8} {_fmt(row.vs_raw, '.2f', 'x'):>7} "
            f"{_fmt(row.cpu_us, '10.1f')} "
            f"{_pct(row.cpu_spread):>4} "
            f"{_fmt(row.cpu_vs_raw, '.2f', 'x'):>7} {row.errors:>6}"
        )
    return "\n".join(lines)


def _per_cpu(cost_ratio: float | None) -> float | None:
    """A CPU-cost ratio turned into a throughput one: requests per CPU-second, relative."""
    return 1 / cost_ratio if cost_ratio else None


def _with_verdict(conns: int, ratio: float | None, goal: float | None) -> str:
    text = f"{conns}c {_fmt(ratio, '.2f', 'x')}"
    if ratio is None or goal is None:
        return text
    return text + (" ok" if ratio >= goal else " BELOW")


def ratio_line(
    results: Sequence[Measurement],
    connections: Sequence[int],
    name: str,
    reference: str,
    goal: float | None,
) -> str | None:
    """``name/reference: req/s 16c 0.80x ...; per CPU-second 16c 0.78x ...  (goal)``

    "per CPU-second" is the inverse of the CPU-per-request ratio: how many requests one
    CPU-second serves, relative to the reference (what req/s would be if CPU were the
    only limit), which a noisy machine disturbs far less than req/s itself.
    """
    names = {m.name for m in results}
    if name not in names or reference not in names:
        return None
    rps: list[str] = []
    per_cpu: list[str] = []
    for conns in connections:
        by_rps = paired_ratio(results, name, reference, conns)
        by_cpu = _per_cpu(paired_ratio(results, name, reference, conns, cpu=True))
        rps.append(_with_verdict(conns, by_rps, goal))
        per_cpu.append(_with_verdict(conns, by_cpu, goal))
    goal_text = f"  (goal >= {goal}x)" if goal else ""
    return (
        f"{name}/{reference}: req/s {', '.join(rps)}; "
        f"per CPU-second {', '.join(per_cpu)}{goal_text}"
    )


def cost_line(rows: Sequence[Row], name: str, reference: str, what: str) -> str | None:
    """``what: +12.3 µs CPU per request at 16c, ...`` from the median CPU per request."""
    parts: list[str] = []
    for row in rows:
        if row.name != name:
            continue
        ref = next(
            (r for r in rows if r.name == reference and r.connections == row.connections), None
        )
        if ref is None or row.cpu_us is None or ref.cpu_us is None:
            continue
        parts.append(f"{row.connections}c {row.cpu_us - ref.cpu_us:+.1f} µs")
    return f"{what}: {', '.join(parts)} of CPU per request" if parts else None


def summary_lines(
    results: Sequence[Measurement], rows: Sequence[Row], connections: Sequence[int]
) -> list[str]:
    lines = [
        ratio_line(results, connections, GATEWAY, "raw", GOAL_RATIO),
        ratio_line(results, connections, GATEWAY_TRACING, GATEWAY, GOAL_TRACING),
        ratio_line(results, connections, GATEWAY_FEATURES, "raw", GOAL_FEATURES),
        ratio_line(results, connections, GATEWAY_NOLOG, GATEWAY, None),
        cost_line(rows, GATEWAY, GATEWAY_NOLOG, "the access log line costs"),
        cost_line(rows, GATEWAY_TRACING, GATEWAY, "tracing (100% sampled, OTLP export) costs"),
        cost_line(
            rows, GATEWAY_FEATURES, GATEWAY_TRACING, "every protection, over gateway+tracing, costs"
        ),
        cost_line(rows, GATEWAY, "raw", "the gateway costs, over the raw proxy,"),
    ]
    return [line for line in lines if line]


# --------------------------------------------------------------------------- main


@dataclass(frozen=True)
class Options:
    duration: int
    warmup: int
    rounds: int
    connections: tuple[int, ...]
    targets: tuple[str, ...]
    json_path: Path | None
    pin: bool


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("connection counts must be >= 1")
    return values


def _target_list(text: str) -> tuple[str, ...]:
    names = {part.strip() for part in text.split(",") if part.strip()}
    unknown = names - set(TARGETS)
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose among {','.join(TARGETS)}; got {text!r}")
    return tuple(name for name in TARGETS if name in names)


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description="Reverse-proxy bench (gateway vs nginx vs raw aiohttp proxy): req/s and "
        "CPU per request, interleaved rounds, medians."
    )
    parser.add_argument("--duration", type=int, default=4, help="seconds per measured run")
    parser.add_argument(
        "--warmup", type=int, default=2, help="seconds of wrk per target before the first round"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--connections", type=_int_list, default=(16, 64), help="e.g. 16,64")
    parser.add_argument("--only", type=_target_list, default=TARGETS, help=",".join(TARGETS))
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("--duration and --rounds must be >= 1 and --warmup >= 0")
    return Options(
        duration=args.duration,
        warmup=args.warmup,
        rounds=args.rounds,
        connections=args.connections,
        targets=args.only,
        json_path=args.json,
        pin=not args.no_pin,
    )


def _start_targets(bench: Bench, targets: Sequence[str]) -> tuple[dict[str, Server], list[str]]:
    """Start every selected target up front, so a broken one fails before any measuring."""
    servers: dict[str, Server] = {}
    failed: list[str] = []
    for name in targets:
        if name == "nginx" and bench.nginx is None:
            print("  nginx: skipped, nginx is not installed (apt-get install nginx)", flush=True)
            continue
        try:
            servers[name] = bench.start_target(name)
        except BenchError as exc:
            print(f"  {name}: FAILED to start, skipped: {exc}", flush=True)
            failed.append(name)
    return servers, failed


@dataclass
class Runner:
    """Runs wrk against the servers, counting every request each one served."""

    wrk: Wrk
    servers: dict[str, Server]
    options: Options
    served: dict[str, int]
    warmup_errors: dict[str, int] = field(default_factory=dict)

    def _wrk(self, name: str, conns: int, seconds: int) -> WrkResult:
        headers = REQUEST_HEADERS.get(name, ())
        result = parse_wrk(name, self.wrk.run(self.servers[name].port, conns, seconds, headers))
        self.served[name] += result.requests
        if result.errors and name == GATEWAY_FEATURES:
            print(
                f"  !! {name}: {result.non_2xx} answers >= 400 and "
                f"{result.errors - result.non_2xx} socket errors: every answer must be 200",
                flush=True,
            )
        return result

    def warm_up(self) -> None:
        if not self.options.warmup:
            return
        conns = max(self.options.connections)
        for name in self.servers:
            self.warmup_errors[name] = self._wrk(name, conns, self.options.warmup).errors

    def measure_one(self, name: str, conns: int, round_no: int) -> Measurement:
        server = self.servers[name]
        before = group_cpu_seconds(server.proc.pid)
        result = self._wrk(name, conns, self.options.duration)
        after = group_cpu_seconds(server.proc.pid)
        cpu_us = None
        if before is not None and after is not None and result.requests:
            cpu_us = (after - before) / result.requests * 1e6
        return Measurement(name, conns, round_no, cpu_us=cpu_us, **asdict(result))

    def measure(self) -> list[Measurement]:
        """Round after round of every target at each connection count.

        All servers stay up for the whole run (an idle server costs nothing); the order is
        reversed every other round so no target always runs right after the same neighbour.
        """
        results: list[Measurement] = []
        names = list(self.servers)
        for round_no in range(1, self.options.rounds + 1):
            order = names if round_no % 2 else names[::-1]
            for conns in self.options.connections:
                for name in order:
                    m = self.measure_one(name, conns, round_no)
                    results.append(m)
                    print(
                        f"  round {round_no} {name:<{NAME_WIDTH}} c={conns:<4} "
                        f"{m.rps:>9.0f} req/s  p50 {m.p50_ms:.2f} ms  p99 {m.p99_ms:.2f} ms  "
                        f"cpu {_fmt(m.cpu_us, '.1f')} µs/req",
                        flush=True,
                    )
        return results


def check_spans(bench: Bench, name: str, served: int) -> tuple[str, dict[str, object]]:
    """Did the traced gateway ``name`` really export a server and a client span per request?

    A BatchSpanProcessor whose queue overflows drops spans silently, which would make
    tracing look cheaper than it is; the sink's count says whether that happened.
    """
    expected = served * SPANS_PER_REQUEST
    deadline = time.monotonic() + SPAN_SETTLE_S
    counts = bench.sink_counts(name)
    while time.monotonic() < deadline and _as_int(counts.get("spans")) < expected:
        time.sleep(0.5)
        counts = bench.sink_counts(name)
    spans = _as_int(counts.get("spans"))
    per_request = spans / served if served else 0.0
    note = (
        f"{name}: the OTLP sink received {spans} spans in "
        f"{_as_int(counts.get('posts'))} POSTs for {served} requests served "
        f"({per_request:.2f} spans/request, {SPANS_PER_REQUEST} expected)"
    )
    if spans < expected * 0.99:
        note += " -- spans were DROPPED or not yet exported: tracing's cost is understated"
    return note, counts


def _as_int(value: object) -> int:
    return int(value) if isinstance(value, int | float | str) else 0


@dataclass(frozen=True)
class AllOk:
    """gateway+features must answer every request with 200: what wrk and the log say."""

    ok: bool
    note: str
    statuses: dict[str, int]


def check_all_ok(runner: Runner, results: Sequence[Measurement], name: str) -> AllOk:
    """wrk's non-2xx and socket-error counts, and the statuses in the gateway's access log.

    wrk counts only answers >= 400 as "Non-2xx or 3xx"; the access log (a JSON line per
    request, in the server's output file) has every status, and says whether any request
    was retried or fell back. The one 401 expected is the probe sent without the key.
    """
    runs = [m for m in results if m.name == name]
    non_2xx = sum(m.non_2xx for m in runs)
    socket_errors = sum(m.errors - m.non_2xx for m in runs)
    warmup = runner.warmup_errors.get(name, 0)
    statuses: Counter[str] = Counter()
    retried = fell_back = 0
    with runner.servers[name].log.open(errors="replace") as log:
        for line in log:
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and "status" in record:
                    statuses[str(record["status"])] += 1
                    retried += bool(record.get("retry"))
                    fell_back += bool(record.get("fallback"))
    logged = sum(statuses.values())
    unexpected = logged - statuses[str(HTTP_OK)] - min(statuses[str(HTTP_UNAUTHORIZED)], 1)
    ok = not (non_2xx or socket_errors or warmup or unexpected) and logged > 0
    shown = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
    note = (
        f"{name}: wrk saw {non_2xx} answers >= 400 and {socket_errors} socket errors "
        f"(+{warmup} in the warm-up); the access log has {logged} answers ({shown}; one 401 "
        f"is the probe without the key), {retried} retried, {fell_back} fell back"
    )
    if not ok:
        note += " -- FAILED: every answer must be 200, the numbers are not valid"
    return AllOk(ok, note, dict(statuses))


def run(
    options: Options, workdir: Path, stack: contextlib.ExitStack
) -> tuple[list[Measurement], list[str], dict[str, object]]:
    wrk_binary = shutil.which("wrk")
    if wrk_binary is None:
        raise BenchError("wrk is not installed (apt-get install wrk)")
    nginx_binary = find_nginx()
    nginx = None
    if nginx_binary:
        nginx = Nginx(nginx_binary, _nginx_version(nginx_binary) >= NGINX_MIN_FOR_E_FLAG)
    pinning = choose_pinning(options.pin)
    bench = Bench(stack=stack, workdir=workdir, pinning=pinning, nginx=nginx)
    runs = options.rounds * len(options.connections) * len(options.targets)
    estimate = len(options.targets) * options.warmup + runs * options.duration
    print(
        f"proxy bench: {','.join(options.targets)} at {options.connections} connections, "
        f"{options.warmup}s warm-up each, then {options.rounds} interleaved rounds of "
        f"{options.duration}s runs (~{estimate}s of wrk)\n"
        f"pinning: {pinning.note}",
        flush=True,
    )
    upstream_kind = bench.start_upstream()
    print(f"upstream: {upstream_kind} on {bench.upstream_url}", flush=True)
    servers, failed = _start_targets(bench, options.targets)
    runner = Runner(Wrk(wrk_binary, pinning.client), servers, options, dict.fromkeys(servers, 0))
    runner.warm_up()
    results = runner.measure()
    settings: dict[str, object] = {
        "duration_s": options.duration,
        "warmup_s": options.warmup,
        "rounds": options.rounds,
        "connections": list(options.connections),
        "targets": list(options.targets),
        "failed": failed,
        "upstream": upstream_kind,
        "pinning": pinning.note,
        "path": REQUEST_PATH,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    notes: list[str] = []
    sinks: dict[str, object] = {}
    for name in TRACED:
        if name in servers:
            # +1: the readiness probe went through it too. (gateway+features' probe without
            # the key, refused, adds at most a server span: inside check_spans' 1% slack.)
            note, sinks[name] = check_spans(bench, name, runner.served[name] + 1)
            notes.append(note)
    if GATEWAY_FEATURES in servers:
        all_ok = check_all_ok(runner, results, GATEWAY_FEATURES)
        notes.append(all_ok.note)
        settings["features_all_200"] = all_ok.ok
        settings["features_statuses"] = all_ok.statuses
        if not all_ok.ok:
            failed.append(GATEWAY_FEATURES)
    settings["notes"] = notes
    settings["otlp_sinks"] = sinks
    return results, failed, settings


def notes_of(settings: dict[str, object]) -> list[str]:
    notes = settings.get("notes")
    return [str(note) for note in notes] if isinstance(notes, list) else []


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the ExitStack: servers get stopped


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGHUP, _exit_on_sigterm)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="proxy-bench-") as tmp,
            contextlib.ExitStack() as stack,
        ):
            workdir = Path(tmp)
            workdir.chmod(0o755)  # nginx workers run as `nobody` when we are root
            results, failed, settings = run(options, workdir, stack)
    except KeyboardInterrupt:
        print("\ninterrupted: every started process was stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    rows = summarise(results, options.connections)
    print()
    rounds = f"{options.rounds} round{'s' if options.rounds != 1 else ''}"
    print(f"medians over {rounds}; ratios are medians of same-round ratios;")
    print("± is half the range over rounds; cpu is the server under test's utime+stime")
    print(table(rows))
    for line in summary_lines(results, rows, options.connections):
        print(line)
    for note in notes_of(settings):
        print(note)
    if failed:
        print(f"FAILED: {', '.join(failed)} (see above)", file=sys.stderr)
    if options.json_path is not None:
        payload = {
            "settings": settings,
            "summary": [asdict(row) for row in rows],
            "runs": [asdict(m) for m in results],
        }
        options.json_path.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"results written to {options.json_path}")
    return EXIT_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
