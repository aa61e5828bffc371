"""Start and stop real Redis servers (Debian's ``redis-server``) for the tests.

:class:`RedisServer` is one server: the Celery tests' broker and the Redis
store's. :class:`RedisCluster` is a three-node Redis Cluster built the way an
operator builds one (``redis-cli --cluster create``), for the cluster store
tests, the reliability suite and the benchmarks. Every server binds 127.0.0.1
on a free port, keeps nothing on disk unless asked, and is ended by its pid.
``scripts/setup-system`` installs ``redis-server`` (which brings ``redis-cli``).

Nothing here imports redis-py: the Celery tests use this module too, and the
helpers talk to the servers over their plain-text protocol or ``redis-cli``.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["RedisCluster", "RedisServer", "free_port", "have_redis", "make_certificate"]

#: A cluster node talks to its peers on its port + 10000 (Redis' fixed offset).
CLUSTER_BUS_OFFSET = 10000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + CLUSTER_BUS_OFFSET < 65536 and _bindable(port + CLUSTER_BUS_OFFSET):
            return port
    raise RuntimeError("found no free port whose port + 10000 is free as well")


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1 and its key (openssl)."""
    cert, key = folder / "redis-cert.pem", folder / "redis-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def have_redis() -> bool:
    """True when ``redis-server`` and ``redis-cli`` are on the PATH."""
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


def _command(port: int, *words: str, timeout: float = 2.0) -> bytes:
    """Send one inline command and return the raw reply (enough for PING, INFO, SHUTDOWN)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(" ".join(words).encode() + b"\r\n")
        chunks = [sock.recv(65536)]
        if chunks[0].startswith(b"$"):  # a bulk reply: read until its announced length
            header, _, rest = chunks[0].partition(b"\r\n")
            want = int(header[1:]) + 2
            have = len(rest)
            while have < want:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                have += len(chunk)
        return b"".join(chunks)


class RedisServer:
    """One ``redis-server`` process; ``url(db)`` names a database on it.

    *extra_args* are more ``redis-server`` options (``["--requirepass", "s3cret"]``).
    It keeps no data on disk, so :meth:`restart` brings it back empty on the
    same port unless told to save first.
    """

    def __init__(
        self, workdir: Path, binary: str | None = None, extra_args: Sequence[str] = (), name: str = "redis"
    ) -> None:
        self.binary = binary or shutil.which("redis-server")
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{name}.log"
        self.dbfilename = f"{name}.rdb"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def _args(self) -> list[str]:
        assert self.binary is not None
        return [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.workdir),
            "--dbfilename",
            self.dbfilename,
            "--logfile",
            str(self.log_path),
            *self.extra_args,
        ]

    def _pick_port(self) -> int:
        return free_port()

    def start(self, timeout: float = 15.0) -> RedisServer:
        if self.binary is None:
            raise RuntimeError("redis-server is not installed: run scripts/setup-system")
        # The port is chosen then released before redis binds it; another process
        # could take it in between, so a failed start tries another port.
        for _ in range(3):
            self.port = self._pick_port()
            if self._spawn(timeout):
                return self
        raise RuntimeError(f"redis-server did not start:\n{self.log()}")

    def _spawn(self, timeout: float) -> bool:
        self.process = subprocess.Popen(
            self._args(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if self._wait_ping(timeout):
            return True
        self.stop()
        return False

    def _wait_ping(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self.ping():
                return True
            time.sleep(0.05)
        return False

    def ping(self) -> bool:
        """True when the server answers PING (or asks for a password: it is up)."""
        try:
            reply = _command(self.port, "PING", timeout=1)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def kill(self) -> None:
        """SIGKILL, by pid: no goodbye to the clients, nothing saved."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process = None

    def restart(self, empty: bool = True, timeout: float = 15.0) -> RedisServer:
        """Bring the server back on the same port: killed and empty, or (``empty=False``)
        shut down after saving its data, which it loads again."""
        if empty:
            self.kill()
            Path(self.workdir / self.dbfilename).unlink(missing_ok=True)
        else:
            _command(self.port, "SHUTDOWN", "SAVE")
            assert self.process is not None
            self.process.wait(10)
            self.process = None
        if not self._spawn(timeout):
            raise RuntimeError(f"redis-server did not come back on port {self.port}:\n{self.log()}")
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def info(self, section: str = "") -> dict[str, str]:
        """``INFO [section]`` as a dict of its ``name:value`` lines."""
        reply = _command(self.port, "INFO", section) if section else _command(self.port, "INFO")
        fields: dict[str, str] = {}
        for line in reply.decode(errors="replace").splitlines():
            name, sep, value = line.partition(":")
            if sep and not line.startswith("#"):
                fields[name] = value.strip()
        return fields

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


class _ClusterNode(RedisServer):
    """One node of a :class:`RedisCluster`: its node configuration file (its
    identity and its slots) survives a kill, so the node rejoins on restart."""

    def __init__(
        self,
        workdir: Path,
        binary: str | None,
        node_timeout_ms: int,
        index: int,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        super().__init__(workdir, binary, name=f"node{index}")
        self.node_timeout_ms = node_timeout_ms
        self.tls = tls
        self.tls_port = 0

    def _pick_port(self) -> int:
        if self.tls is not None:
            self.tls_port = free_port()
        return _free_cluster_port()

    def _args(self) -> list[str]:
        tls: list[str] = []
        if self.tls is not None:
            # Clients on the TLS port are told the nodes' TLS ports; the plain
            # port stays open for this module's own checks and redis-cli.
            cert, key = self.tls
            tls = [
                "--tls-port", str(self.tls_port), "--tls-cluster", "yes",
                "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
            ]  # fmt: skip
        return [
            *super()._args(),
            *tls,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            f"nodes-{self.port}.conf",
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            # Without replicas a dead node's slots are uncovered; with full coverage
            # required (Redis' default) every node would then refuse every key. The
            # tests need the live nodes to keep serving theirs.
            "--cluster-require-full-coverage",
            "no",
        ]

    def cluster_state(self) -> str | None:
        try:
            fields = self.cluster_info()
        except OSError:
            return None
        return fields.get("cluster_state")

    def cluster_info(self) -> dict[str, str]:
        reply = _command(self.port, "CLUSTER", "INFO").decode(errors="replace")
        fields: dict[str, str] = {}
        for line in reply.splitlines():
            name, sep, value = line.partition(":")
            if sep:
                fields[name] = value.strip()
        return fields


class RedisCluster:
    """A real Redis Cluster of *size* primaries and no replicas on 127.0.0.1.

    ::

        cluster = RedisCluster(tmp_path).start()
        store = open_store(cluster.url())        # redis+cluster://127.0.0.1:PORT
        cluster.kill(1)                          # node 1 dies (SIGKILL by pid)
        cluster.restart(1)                       # back on its port, empty, same slots
        cluster.stop()

    Nodes run with ``cluster-require-full-coverage no``, so while one is down
    the others keep serving their slots, and a short node timeout (2 s by
    default) so the cluster notices a death and a return quickly. Given *tls*
    (a certificate and its key, the certificate also the CA), the nodes also
    listen for TLS, talk TLS among themselves, and :meth:`tls_url` names them.
    """

    def __init__(
        self,
        workdir: Path,
        size: int = 3,
        node_timeout_ms: int = 2000,
        binary: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        if size < 3:
            raise ValueError("redis-cli --cluster create needs at least three primaries")
        self.workdir = workdir
        self.cli = shutil.which("redis-cli")
        self.tls = tls
        self.nodes = [_ClusterNode(workdir, binary, node_timeout_ms, index, tls) for index in range(size)]

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def pids(self) -> list[int | None]:
        return [node.pid for node in self.nodes]

    def url(self, node: int = 0) -> str:
        """``redis+cluster://`` naming one node (any will do: the client finds the rest)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[node].port}"

    def tls_url(self, node: int = 0) -> str:
        """``rediss+cluster://`` naming one node's TLS port (needs *tls*), CA included."""
        if self.tls is None:
            raise RuntimeError("this cluster was started without tls=(certificate, key)")
        return f"rediss+cluster://127.0.0.1:{self.nodes[node].tls_port}?ssl_ca_certs={self.tls[0]}"

    def start(self, timeout: float = 60.0) -> RedisCluster:
        if self.cli is None:
            raise RuntimeError("redis-cli is not installed: run scripts/setup-system")
        try:
            for node in self.nodes:
                node.start()
            created = subprocess.run(
                [
                    self.cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{port}" for port in self.ports),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}")
            self.wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Until every live node says ``cluster_state:ok`` and knows all its peers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._node_ok(node) for node in self.nodes):
                return
            time.sleep(0.1)
        states = {node.port: node.cluster_state() for node in self.nodes}
        raise RuntimeError(f"the cluster did not reach cluster_state:ok in {timeout}s: {states}")

    def _node_ok(self, node: _ClusterNode) -> bool:
        try:
            fields = node.cluster_info()
        except OSError:
            return False
        return (
            fields.get("cluster_state") == "ok"
            and fields.get("cluster_known_nodes") == str(len(self.nodes))
            and fields.get("cluster_slots_ok") == "16384"
        )

    def kill(self, index: int) -> None:
        """SIGKILL node *index* by its pid; its slots are unserved until :meth:`restart`."""
        self.nodes[index].kill()

    def restart(self, index: int, timeout: float = 60.0) -> None:
        """Start node *index* again on its port with its node configuration: it
        rejoins with its slots, and no data (nothing was saved)."""
        node = self.nodes[index]
        node.kill()
        Path(node.workdir / node.dbfilename).unlink(missing_ok=True)
        if not node._spawn(timeout=15.0):
            raise RuntimeError(f"cluster node on port {node.port} did not come back:\n{node.log()}")
        self.wait_ok(timeout)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
