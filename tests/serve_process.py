"""``flagscope serve`` in its own process, on a free loopback port, as users run it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FLAGSCOPE = str(Path(sys.executable).with_name("flagscope"))
START_TIMEOUT = 30.0


@dataclass
class ServeProcess:
    """A running ``flagscope serve``: its process, first stdout line, URL and port."""

    process: subprocess.Popen[str]
    banner: str
    url: str
    port: int

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, bytes]:
        """Send one request on a fresh connection; return the status and the body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def get_json(self, path: str) -> Any:
        status, body = self.request("GET", path)
        assert status == 200, body
        return json.loads(body)

    def rss_bytes(self) -> int:
        """The server process's resident memory now."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        (line,) = [line for line in status.splitlines() if line.startswith("VmRSS:")]
        return int(line.split()[1]) * 1024

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> tuple[int, str]:
        """Signal the process and wait for it; return its exit code and stderr."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            _, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise
        return self.process.returncode, stderr


def start_serve(*options: str) -> ServeProcess:
    """Start ``flagscope serve --port 0 OPTIONS`` and wait for its startup line."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [FLAGSCOPE, "serve", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    timer = threading.Timer(START_TIMEOUT, process.kill)
    timer.start()
    try:
        banner = process.stdout.readline()
    finally:
        timer.cancel()
    if "listening on " not in banner:
        process.kill()
        _, stderr = process.communicate()
        raise RuntimeError(f"flagscope serve did not start: {banner!r} {stderr!r}")
    url = banner.split("listening on ", 1)[1].split()[0]
    return ServeProcess(process, banner, url, int(url.rsplit(":", 1)[1]))


@contextmanager
def serving(*options: str) -> Iterator[ServeProcess]:
    """``start_serve``, stopped with SIGINT (then killed, if need be) at the end."""
    server = start_serve(*options)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            with suppress(subprocess.TimeoutExpired):
                server.stop()


def port_is_free(port: int) -> bool:
    """Whether a new socket can listen on ``127.0.0.1:port`` (the server released it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
