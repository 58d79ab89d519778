"""nginx in front of exportd replicas: a real load balancer on loopback, for tests and benches.

nginx retries a request on the next replica when it cannot connect (a killed replica), or
when the replica fails before answering, but it never retries a POST it has already sent: the
client owns that retry, with an `Idempotency-Key`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import psutil

from exportd.dev.servers import free_port

SBIN_NGINX: Final = Path("/usr/sbin/nginx")
READY_TIMEOUT_S: Final = 10.0
STOP_TIMEOUT_S: Final = 10.0


class NginxMissing(RuntimeError):
    """No nginx binary; `make nginx` installs it (Debian package nginx-light)."""


def nginx_binary() -> str:
    """The nginx executable: on PATH, or Debian's /usr/sbin/nginx (not on a user's PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    if os.access(SBIN_NGINX, os.X_OK):
        return str(SBIN_NGINX)
    raise NginxMissing(
        "nginx is not installed (looked on PATH and at /usr/sbin/nginx); `make nginx` installs"
        " it (apt-get install -y nginx-light)"
    )


def render_config(directory: Path, port: int, upstreams: Sequence[int], read_timeout_s: int) -> str:
    """nginx.conf: listen on 127.0.0.1:`port`, balance over 127.0.0.1:`upstreams`."""
    servers = "\n".join(
        # max_fails=0: never mark a replica down. A refused connect to a dead one costs
        # microseconds on loopback and nginx moves on to the next (proxy_next_upstream), while
        # the default (down for 10 s after one failure) would shun a replica that is back.
        f"        server 127.0.0.1:{p} max_fails=0;"
        for p in upstreams
    )
    return f"""\
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    log_format upstream '$remote_addr "$request" $status $request_time'
                        ' upstream=$upstream_addr upstream_status=$upstream_status';
    access_log {directory}/access.log upstream;

    # Temp files stay inside our directory; with the buffers below nginx never needs them
    # (bodies are capped at 64 KiB by exportd, answers are small JSON).
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    client_body_buffer_size 128k;
    client_max_body_size 1m;
    proxy_max_temp_file_size 0;

    upstream exportd {{
{servers}
        keepalive 16;
    }}

    server {{
        listen 127.0.0.1:{port};

        location / {{
            proxy_pass http://exportd;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 2s;
            # Longer than the longest long-poll (EXPORTD_MAX_WAIT_S).
            proxy_read_timeout {read_timeout_s}s;
            proxy_send_timeout {read_timeout_s}s;
            # A dead replica is skipped. POST is not idempotent: nginx passes it on only when
            # it could not send it at all; after that the client retries (Idempotency-Key).
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 3;
        }}
    }}
}}
"""


class LoadBalancer:
    """One nginx master + one worker, in its own session, with everything in `directory`."""

    def __init__(
        self, upstreams: Sequence[int], directory: Path | None = None, *, read_timeout_s: int = 90
    ) -> None:
        self.upstreams = list(upstreams)
        self.read_timeout_s = read_timeout_s
        self._own_directory = directory is None
        self.directory = (
            Path(tempfile.mkdtemp(prefix="exportd-nginx-")) if directory is None else directory
        )
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Write the config, start nginx and wait until its port accepts connections."""
        binary = nginx_binary()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = self.directory / "nginx.conf"
        config.write_text(
            render_config(self.directory, self.port, self.upstreams, self.read_timeout_s)
        )
        # -e: the error log also before the config is read (else the compiled-in path).
        args = [binary, "-p", str(self.directory), "-c", str(config), "-e", str(self.error_log)]
        with (self.directory / "nginx.out").open("ab") as out:
            self._process = subprocess.Popen(
                [*args, "-g", "daemon off;"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() can end the worker too
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"nginx exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nginx not listening in time:\n{self.log_tail()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop nginx (fast shutdown, SIGKILL if it lingers): no nginx process remains."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            try:
                workers = psutil.Process(process.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                workers = []
            process.send_signal(signal.SIGTERM)  # the master stops its worker, then exits
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                # Not reaped yet, so its pid (the group's id) cannot have been reused.
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            for worker in workers:
                with contextlib.suppress(psutil.NoSuchProcess):
                    worker.kill()  # psutil checks it is still the same process
            psutil.wait_procs(workers, timeout=STOP_TIMEOUT_S)
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def failovers(self) -> int:
        """Requests nginx passed on to another replica (its access log lists several)."""
        try:
            lines = self.access_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return 0
        return sum(", " in line.rpartition(" upstream_status=")[2] for line in lines)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.error_log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no error log)"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
