"""A real redis-server on a free loopback port, persistence off, stopped by its PID."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_WITHIN = 5.0
CLUSTER_BUS_OFFSET, MAX_PORT = 10000, 65535


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is a port, and free too."""
    for _ in range(100):
        port = free_port()
        if port + CLUSTER_BUS_OFFSET <= MAX_PORT:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + CLUSTER_BUS_OFFSET))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair for a one-node Redis cluster")


class RedisServer:
    """One redis-server process; kill/stall/restart it on the same port."""

    def __init__(self, workdir: Path, *, cluster: bool = False, tls: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
        self._binary = binary
        self._workdir = workdir
        self.port = _cluster_port() if cluster else free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None
        self._cluster = cluster
        self._tls: ssl.SSLContext | None = None
        if tls:
            # TLS only (port 0: no plain port), as ElastiCache Serverless: a self-signed
            # certificate for 127.0.0.1, which the URL tells the client to trust.
            self.certificate = self_signed(workdir)
            self._tls = ssl.create_default_context(cafile=str(self.certificate[0]))
            self.url = f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.certificate[0]}"

    def start(self) -> None:
        command = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self._workdir)]
        if self._tls is not None:
            certificate, key = self.certificate
            command[1:3] = ["--port", "0", "--tls-port", str(self.port)]
            command += ["--tls-cert-file", str(certificate), "--tls-key-file", str(key)]
            command += ["--tls-ca-cert-file", str(certificate), "--tls-auth-clients", "no"]
        if self._cluster:
            # A cluster of one node owning every slot: what ElastiCache Serverless shows a
            # client (one endpoint, no MOVED), with the cluster's rules (CROSSSLOT) enforced.
            nodes = self._workdir / f"nodes-{self.port}.conf"
            nodes.unlink(missing_ok=True)
            command += ["--cluster-enabled", "yes", "--cluster-config-file", str(nodes)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self._workdir
        )
        deadline = time.monotonic() + START_WITHIN
        try:
            while not self._pong():
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise RuntimeError(f"redis-server did not answer PING on {self.port}")
                time.sleep(0.01)
            if self._cluster:
                self._own_every_slot(deadline)
        except BaseException:
            self.stop()  # whatever went wrong, no redis-server is left behind
            raise

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to the clients."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=5)
            self._process = None

    def stall(self) -> None:
        """SIGSTOP: connections stay open, nothing answers."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            self._process = None  # it exited by itself (a failed start)
        if self._process is not None:
            self.resume()
            os.kill(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=5)
            self._process = None

    def _own_every_slot(self, deadline: float) -> None:
        self._ask(b"CLUSTER ADDSLOTSRANGE 0 16383\r\n")
        while b"cluster_state:ok" not in self._ask(b"CLUSTER INFO\r\n"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the one-node cluster on {self.port} never came up")
            time.sleep(0.01)

    def _ask(self, inline: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as conn:
            conn.sendall(inline)
            return conn.recv(4096)

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as raw:
                if self._tls is None:
                    raw.sendall(b"PING\r\n")
                    return raw.recv(16).startswith(b"+PONG")
                with self._tls.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
                    conn.sendall(b"PING\r\n")
                    return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@contextmanager
def running_redis(
    workdir: Path, *, cluster: bool = False, tls: bool = False
) -> Iterator[RedisServer]:
    """A started redis-server for the block, stopped by its PID after it, whatever happens."""
    server = RedisServer(workdir, cluster=cluster, tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, valid for a day."""
    # cryptography comes with PyJWT[crypto], a dependency of the gateway's
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / "redis-cert.pem", workdir / "redis-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
