"""``flagscope serve`` in its own process, on a free loopback port, as users run it."""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

FLAGSCOPE = str(Path(sys.executable).with_name("flagscope"))
START_TIMEOUT = 30.0


@dataclass
class ServeProcess:
    """A running ``flagscope serve``: its process, first stdout line, URL and port."""

    process: subprocess.Popen[str]
    banner: str
    url: str
    port: int
    stderr_file: IO[str]

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
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        self.stderr_file.seek(0)
        stderr = self.stderr_file.read()
        self.stderr_file.close()
        return self.process.returncode, stderr


def start_serve(*options: str, max_open_files: int | None = None) -> ServeProcess:
    """Start ``flagscope serve --port 0 OPTIONS`` and wait for its startup line.

    ``max_open_files`` lowers the process's file-descriptor limit (``ulimit -n``).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def limit_files() -> None:
        if max_open_files is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, hard))

    # stderr goes to a file: a pipe nobody reads would fill, and the server's next
    # log line would then block its event loop.
    stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by ServeProcess.stop
    process = subprocess.Popen(
        [FLAGSCOPE, "serve", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        preexec_fn=limit_files,
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
        process.communicate()
        stderr.seek(0)
        raise RuntimeError(f"flagscope serve did not start: {banner!r} {stderr.read()!r}")
    # The rest of stdout is read as it comes, for the same reason.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    url = banner.split("listening on ", 1)[1].split()[0]
    return ServeProcess(process, banner, url, int(url.rsplit(":", 1)[1]), stderr)


@contextmanager
def serving(*options: str, max_open_files: int | None = None) -> Iterator[ServeProcess]:
    """``start_serve``, stopped with SIGINT (then killed, if need be) at the end."""
    server = start_serve(*options, max_open_files=max_open_files)
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
