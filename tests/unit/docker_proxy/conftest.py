"""Shared helpers for docker-proxy's tests: the proxy's code is in images/docker-proxy/ (not a
package), and some tests start it as a process on a free loopback port."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROXY_DIR = Path(__file__).resolve().parents[3] / "images" / "docker-proxy"
sys.path.insert(0, str(PROXY_DIR))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc=None, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the proxy exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class ProxyProcess:
    """proxy.py run with the host's python3 (stdlib only), its log in a file."""

    def __init__(self, upstream, env=None, log_path=None):
        self.port = free_port()
        self.log_path = log_path
        self.env = {**os.environ, "PROXY_LISTEN": f"127.0.0.1:{self.port}", "PROXY_UPSTREAM": str(upstream),
                    **(env or {})}
        self.log = open(log_path, "w+") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen([sys.executable, str(PROXY_DIR / "proxy.py")], env=self.env,
                                     stdout=self.log, stderr=self.log)
        wait_listening(self.port, self.proc)

    @property
    def url(self):
        return f"tcp://127.0.0.1:{self.port}"

    def log_text(self):
        return Path(self.log_path).read_text() if self.log_path else ""

    def check(self):
        """proxy.py --check against this proxy: its exit code."""
        return subprocess.run([sys.executable, str(PROXY_DIR / "proxy.py"), "--check"], env=self.env,
                              capture_output=True, timeout=30).returncode

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.log_path:
            self.log.close()


@pytest.fixture
def start_proxy(tmp_path):
    started = []

    def start(upstream, **env):
        p = ProxyProcess(upstream, env, log_path=tmp_path / f"proxy-{len(started)}.log")
        started.append(p)
        return p
    yield start
    for p in started:
        p.stop()
