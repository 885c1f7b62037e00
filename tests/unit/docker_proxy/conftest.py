"""Shared helpers for docker-proxy's tests: the proxy's code is in images/docker-proxy/ (not a
package; pytest.ini puts it on pytest's pythonpath), and some tests start it as a process on a
free loopback port."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROXY_DIR = Path(__file__).resolve().parents[3] / "images" / "docker-proxy"


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


# --------------------------------------------------------------------------------------------
# The fake engine in Go (fake_engine/main.go): Go's net/http and encoding/json, as the engine.

ROOT = Path(__file__).resolve().parents[3]
FAKE_ENGINE_SRC = Path(__file__).resolve().parent / "fake_engine" / "main.go"


def fake_engine_binary(tmp_dir):
    """FAKE_ENGINE (the Makefile builds it), else build/fake_engine, else built here with go."""
    for candidate in (os.environ.get("FAKE_ENGINE"), ROOT / "build" / "fake_engine"):
        if candidate and Path(candidate).exists() and Path(candidate).stat().st_mtime >= FAKE_ENGINE_SRC.stat().st_mtime:
            return Path(candidate)
    out = Path(tmp_dir) / "fake_engine"
    try:
        subprocess.run(["go", "build", "-o", str(out), str(FAKE_ENGINE_SRC)], check=True, capture_output=True,
                       timeout=300, env={**os.environ, "GO111MODULE": "off",
                                         "GOCACHE": str(ROOT / "build" / "go-cache")})
    except FileNotFoundError:
        pytest.skip("the Go fake engine needs Go: `make test-unit-docker-proxy` installs golang-go and builds it")
    return out


class GoEngine:
    """The Go fake engine on a unix socket; `log()` is every request it received, create bodies
    decoded the engine's way (Config, HostConfig, NetworkingConfig)."""

    def __init__(self, binary, path):
        self.path = str(path)
        self.proc = subprocess.Popen([str(binary), self.path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout.readline().strip() == b"listening"

    def request(self, method, target, body=None):
        import http.client

        class UnixConnection(http.client.HTTPConnection):
            def connect(conn):
                conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.sock.connect(self.path)
        c = UnixConnection("engine", timeout=10)
        c.request(method, target, body=body)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def log(self):
        import json
        return json.loads(self.request("GET", "/_fake/log")[1]) or []

    def forwarded(self):
        """What reached the engine, apart from the proxy's own /version and image lookups."""
        return [e for e in self.log() if not e["Target"].endswith("/version") and "/images/" not in e["Target"]]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def go_engine_binary(tmp_path_factory):
    return fake_engine_binary(tmp_path_factory.mktemp("go"))


@pytest.fixture
def go_engine(go_engine_binary, tmp_path):
    e = GoEngine(go_engine_binary, tmp_path / "go-engine.sock")
    yield e
    e.stop()


def exchange(port, raw, shutdown=False, timeout=10):
    """Send raw bytes to 127.0.0.1:port on one connection, read until the peer closes; the bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        if shutdown:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
