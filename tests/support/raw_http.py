"""A scripted raw HTTP/1.1 server on 127.0.0.1, in threads: answers whatever bytes
a test wants (garbage included), to test HTTP clients of any framework."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

#: reply(request_number, head, body) -> the bytes to answer, or None to close unanswered
Script = Callable[[int, bytes, bytes], "bytes | None"]


class RawServer:
    def __init__(self, reply: Script, close_after: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.reply = reply
        self.close_after = close_after  # close the connection after answering this request
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._tls = tls
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self._sock.getsockname()[1]}/hook?x=1"
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._sock.close()
        for conn in self._open:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            if self._tls is not None:
                try:
                    conn.settimeout(5)
                    conn = self._tls.wrap_socket(conn, server_side=True)
                    conn.settimeout(None)
                except (OSError, ssl.SSLError):  # a client that refused our certificate
                    conn.close()
                    continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                with self._lock:
                    self.requests.append((head, body))
                    number = len(self.requests)
                answer = self.reply(number, head, body)
                if answer is None:
                    return
                conn.sendall(answer)
                if number == self.close_after:
                    return
        except OSError:
            return
        finally:
            conn.close()


def hanging_server() -> tuple[socket.socket, int]:
    """A socket that accepts connections (the kernel does) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock, sock.getsockname()[1]


def self_signed(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 with a throw-away self-signed certificate
    (Debian's openssl CLI), and the certificate's path, to be trusted as a CA."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert


@contextlib.contextmanager
def trusted_and_stranger() -> Iterator[tuple[ssl.SSLContext, ssl.SSLContext]]:
    """Two server TLS contexts for 127.0.0.1: the first's certificate trusted through
    ``SSL_CERT_FILE`` while the block runs (the clients read it when they first connect
    over TLS), the second's trusted by nobody."""
    with tempfile.TemporaryDirectory() as trusted, tempfile.TemporaryDirectory() as other:
        context, cert = self_signed(Path(trusted))
        stranger, _ = self_signed(Path(other))
        saved = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = str(cert)
        try:
            yield context, stranger
        finally:
            if saved is None:
                del os.environ["SSL_CERT_FILE"]
            else:
                os.environ["SSL_CERT_FILE"] = saved


async def read_response(
    reader: asyncio.StreamReader, method: str = "POST"
) -> tuple[bytes, dict[str, str], bytes]:
    """One HTTP/1.1 response off a kept-alive connection: the status line, the headers
    by lower-case name, and a body of ``Content-Length`` bytes (none for HEAD)."""
    status = await reader.readline()
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    size = 0 if method == "HEAD" else int(headers["content-length"])
    return status, headers, await reader.readexactly(size)
