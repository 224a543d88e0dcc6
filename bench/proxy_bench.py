"""Reverse-proxy throughput bench: the gateway against nginx and a raw aiohttp ASGI proxy.

Everything runs on loopback against ONE fast upstream (nginx returning a small JSON body):

    direct   the upstream itself
    nginx    nginx as a keep-alive reverse proxy (the non-Python reference)
    raw      bench/raw_proxy.py, a bare ASGI proxy on aiohttp (the practical Python ceiling)
    gateway  gateway.app:app with a generated routes.yaml (split + routing on)

Each target is hit with ``wrk -t1 -cN --latency`` after a short warm-up; the script prints
req/s, p50, p99 and ratios to nginx and raw measured in the same run (the machine is noisy,
absolute numbers are not comparable between runs, ratios are).  Every process it starts
runs in its own process group and is stopped on exit, Ctrl-C or error.

    .venv/bin/python bench/proxy_bench.py [--duration 8] [--connections 16,64]
        [--only gateway,raw,...] [--json FILE] [--no-pin]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
HOST = "127.0.0.1"
REQUEST_PATH = "/api/orders/1"
UPSTREAM_BODY = '{"ok":true,"service":"upstream","items":[1,2,3]}'
TARGETS = ("direct", "nginx", "raw", "gateway")
GOAL_RATIO = 0.8

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


def _probe(port: int) -> int | None:
    """HTTP status of ``GET REQUEST_PATH``, or None while nothing answers."""
    conn = http.client.HTTPConnection(HOST, port, timeout=PROBE_TIMEOUT_S)
    try:
        conn.request("GET", REQUEST_PATH)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def wait_ready(server: Server, timeout: float = START_TIMEOUT_S) -> int:
    """Block until ``server`` answers HTTP; return the status of the probe request."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = server.proc.poll()
        if code is not None:
            raise BenchError(
                f"{server.name} exited with code {code} before answering on port "
                f"{server.port}; its output:\n{server.log_tail()}"
            )
        status = _probe(server.port)
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
class Measurement:
    name: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors + non-2xx/3xx answers


_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_wrk(name: str, connections: int, output: str) -> Measurement:
    """Requests/sec, p50/p99 (``--latency`` distribution) and error counts from wrk's text."""
    rps = _RPS.search(output)
    percentiles = {
        pct: float(value) * _TO_MS[unit] for pct, value, unit in _PERCENTILE.findall(output)
    }
    if rps is None or {"50", "99"} - percentiles.keys():
        raise BenchError(f"cannot parse wrk output for {name}:\n{output}")
    non_2xx = _NON_2XX.search(output)
    socket_errors = _SOCKET_ERRORS.search(output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(count) for count in socket_errors.groups())
    return Measurement(
        name=name,
        connections=connections,
        rps=float(rps.group(1)),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        errors=errors,
    )


@dataclass(frozen=True)
class Wrk:
    binary: str
    pin: tuple[str, ...]

    def run(self, port: int, connections: int, seconds: int) -> str:
        url = f"http://{HOST}:{port}{REQUEST_PATH}"
        cmd = [*self.pin, self.binary, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
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


@dataclass
class Bench:
    """Starts what the selected targets need; every start is undone by ``stack``."""

    stack: contextlib.ExitStack
    workdir: Path
    pinning: Pinning
    nginx: Nginx | None
    upstream: Server | None = None

    def _launch(
        self, name: str, cmd: Sequence[str], port: int, env: dict[str, str] | None = None
    ) -> Server:
        server = spawn(name, cmd, port, self.workdir, {**os.environ, **(env or {})})
        self.stack.callback(server.stop)
        status = wait_ready(server)
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
        routes = self.workdir / "routes.yaml"
        routes.write_text(gateway_routes(self.upstream_url))
        env = {"GATEWAY_CONFIG": str(routes)}
        return self._launch(name, [*pin, *_uvicorn("gateway.app:app", port)], port, env)


# --------------------------------------------------------------------------- report


def _ratio(value: float, reference: Measurement | None) -> float | None:
    return value / reference.rps if reference and reference.rps else None


def _fmt_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _reference(results: Iterable[Measurement], name: str, connections: int) -> Measurement | None:
    return next((m for m in results if m.name == name and m.connections == connections), None)


def with_ratios(results: Sequence[Measurement]) -> list[dict[str, object]]:
    """Each measurement as a dict plus its ratios to nginx and to raw at the same load."""
    rows: list[dict[str, object]] = []
    for m in results:
        row: dict[str, object] = asdict(m)
        row["vs_nginx"] = _ratio(m.rps, _reference(results, "nginx", m.connections))
        row["vs_raw"] = _ratio(m.rps, _reference(results, "raw", m.connections))
        rows.append(row)
    return rows


def table(results: Sequence[Measurement]) -> str:
    header = (
        f"{'name':<8} {'conns':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'vs nginx':>8} {'vs raw':>7} {'errors':>6}"
    )
    lines = [header, "-" * len(header)]
    ordered = sorted(results, key=lambda m: (TARGETS.index(m.name), m.connections))
    for m in ordered:
        nginx = _ratio(m.rps, _reference(results, "nginx", m.connections))
        raw = _ratio(m.rps, _reference(results, "raw", m.connections))
        lines.append(
            f"{m.name:<8} {m.connections:>5} {m.rps:>10.0f} {m.p50_ms:>8.2f} {m.p99_ms:>8.2f} "
            f"{_fmt_ratio(nginx):>8} {_fmt_ratio(raw):>7} {m.errors:>6}"
        )
    return "\n".join(lines)


def goal_line(results: Sequence[Measurement], connections: Sequence[int]) -> str:
    parts = []
    for conns in connections:
        gateway = _reference(results, "gateway", conns)
        ratio = _ratio(gateway.rps, _reference(results, "raw", conns)) if gateway else None
        verdict = "" if ratio is None else (" ok" if ratio >= GOAL_RATIO else " BELOW")
        parts.append(f"{conns}c {_fmt_ratio(ratio)}{verdict}")
    return f"gateway/raw: {', '.join(parts)}  (goal >= {GOAL_RATIO}x)"


# --------------------------------------------------------------------------- main


@dataclass(frozen=True)
class Options:
    duration: int
    warmup: int
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
        description="Reverse-proxy throughput bench (gateway vs nginx vs raw aiohttp proxy)."
    )
    parser.add_argument("--duration", type=int, default=8, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each one")
    parser.add_argument("--connections", type=_int_list, default=(16, 64), help="e.g. 16,64")
    parser.add_argument("--only", type=_target_list, default=TARGETS, help=",".join(TARGETS))
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 0:
        parser.error("--duration must be >= 1 and --warmup >= 0")
    return Options(
        duration=args.duration,
        warmup=args.warmup,
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


def measure(wrk: Wrk, servers: dict[str, Server], options: Options) -> list[Measurement]:
    """Interleave targets at each connection count: compared numbers are seconds apart.

    All servers stay up for the whole run; an idle server costs nothing, and measuring
    raw then gateway back to back keeps the machine's noise out of their ratio.
    """
    results: list[Measurement] = []
    for conns in options.connections:
        for name, server in servers.items():
            if options.warmup:
                wrk.run(server.port, conns, options.warmup)
            measurement = parse_wrk(name, conns, wrk.run(server.port, conns, options.duration))
            results.append(measurement)
            print(
                f"  {name:<8} c={conns:<4} {measurement.rps:>9.0f} req/s  "
                f"p50 {measurement.p50_ms:.2f} ms  p99 {measurement.p99_ms:.2f} ms",
                flush=True,
            )
    return results


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
    estimate = len(options.connections) * len(options.targets) * (options.warmup + options.duration)
    print(
        f"proxy bench: {','.join(options.targets)} at {options.connections} connections, "
        f"{options.warmup}s warm-up + {options.duration}s each (~{estimate}s of wrk)\n"
        f"pinning: {pinning.note}",
        flush=True,
    )
    upstream_kind = bench.start_upstream()
    print(f"upstream: {upstream_kind} on {bench.upstream_url}", flush=True)
    servers, failed = _start_targets(bench, options.targets)
    results = measure(Wrk(wrk_binary, pinning.client), servers, options)
    settings: dict[str, object] = {
        "duration_s": options.duration,
        "warmup_s": options.warmup,
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
    return results, failed, settings


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
    print()
    print(table(results))
    print(goal_line(results, options.connections))
    if options.json_path is not None:
        payload = {"settings": settings, "results": with_ratios(results)}
        options.json_path.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"results written to {options.json_path}")
    return EXIT_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
