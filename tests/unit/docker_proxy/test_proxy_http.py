"""docker-proxy's HTTP handling, against a fake engine on a unix socket: what is forwarded (and
what never is), framing, limits, errors, the attach upgrade, client disconnects. No Docker
needed: proxy.py runs as a process with the host's python3."""
import http.client
import json
import re
import secrets
import select
import signal
import socket
import socketserver
import threading
import time

import pytest

from conftest import PROXY_DIR, exchange

PRIVILEGED = json.dumps({"Image": "downlink/astro:1", "HostConfig": {"Privileged": True}}).encode()
GOOD = json.dumps({"Image": "downlink/astro:1", "Env": ["SECRET=hunter2"],
                   "HostConfig": {"NetworkMode": "bridge", "Memory": 67108864, "PidsLimit": 64}}).encode()


def same_json(a, b):
    return json.loads(a) == json.loads(b)


class FakeEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Answers like the Docker engine for the few endpoints the tests use, and records every
    request it receives (head, body)."""
    daemon_threads = True

    def __init__(self, path):
        self.requests = []
        self.lookups = []  # the proxy's own: /version, image users
        self.events = []
        self.names = {"someone-elses": secrets.token_hex(32)}  # name -> id
        super().__init__(str(path), FakeHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class FakeHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            rest += s.recv(65536)
        method, target = head.split(b" ")[:2]
        target = target.decode()
        path = re.sub(r"^/v[0-9.]+", "", target.split("?")[0])
        if path == "/version" or path.startswith("/images/"):
            self.server.lookups.append(target)
        else:
            self.server.requests.append((head.decode("latin-1"), rest))
        if path == "/version":
            body = b'{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12"}'
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        elif path.startswith("/images/"):
            body = b'{"Id":"sha256:1","Config":{"User":"astro"}}'
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        elif path == "/_ping":
            s.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n"
                      + (b"" if method == b"HEAD" else b"OK"))
        elif path == "/containers/create":
            cid = secrets.token_hex(32)
            m = re.search(r"name=([^&]+)", target)
            if m:
                self.server.names[m.group(1)] = cid
            body = json.dumps({"Id": cid, "Warnings": []}).encode()
            if "name=chunky" in target:
                s.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                          + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:]))
            else:
                s.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(body), body))
        elif path.endswith("/json") and path.startswith("/containers/"):
            ref = path.split("/")[2]
            cid = self.server.names.get(ref, ref if re.fullmatch("[0-9a-f]{64}", ref) else None)
            if cid is None:
                s.sendall(b'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n'
                          b'{"message":"No such container: nothing"}')
            else:
                body = json.dumps({"Id": cid, "Name": "/" + ref, "State": {"Running": False}}).encode()
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(body), body))
        elif path.endswith("/start") or method == b"DELETE":
            s.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif path.endswith("/wait"):
            r, _, _ = select.select([s], [], [], 5)
            if r and not s.recv(1):
                self.server.events.append("wait aborted by the client")
                return
            s.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"StatusCode":0}')
        elif path.endswith("/logs"):
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(3):
                line = b"line %d\n" % i
                s.sendall(b"%x\r\n%s\r\n" % (len(line), line))
                time.sleep(0.05)
            s.sendall(b"0\r\n\r\n")
        elif path.endswith("/attach") and b"\r\nUpgrade: tcp" in head:
            s.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                      b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                s.sendall(b"echo:" + chunk)
            s.sendall(b"bye")
        else:
            s.sendall(b'HTTP/1.1 404 Not Found\r\nContent-Length: 22\r\n\r\n{"message":"no route"}')


@pytest.fixture
def engine(tmp_path):
    e = FakeEngine(tmp_path / "engine.sock")
    yield e
    e.shutdown()
    e.server_close()


@pytest.fixture
def proxy(engine, start_proxy):
    return start_proxy(engine.server_address, PROXY_REQUEST_TIMEOUT="2")



def status(response):
    return int(response.split(b" ", 2)[1])


def json_body(response):
    head, _, body = response.partition(b"\r\n\r\n")
    return json.loads(body)


def post(path, body, extra=b""):
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (path.encode(), len(body), extra, body))


def create_id(proxy, body=GOOD, query=""):
    r = exchange(proxy.port, post("/v1.41/containers/create" + query, body))
    assert status(r) == 201, r
    return json_body(r)["Id"]


def test_the_request_is_rewritten_for_the_engine(proxy, engine):
    r = exchange(proxy.port, b"GET /v1.41/_ping HTTP/1.1\r\nHost: client\r\nConnection: keep-alive\r\n"
                             b"Keep-Alive: timeout=5\r\nTE: trailers\r\nX-Custom: 1\r\n\r\n")
    head, _, body = r.partition(b"\r\n\r\n")
    assert status(r) == 200 and body == b"OK"
    assert b"\r\nConnection: close" in head and b"Api-Version: 1.41" in head
    [(sent, _)] = engine.requests
    lines = sent.split("\r\n")
    assert lines[0] == "GET /v1.41/_ping HTTP/1.1"
    assert "Host: docker" in lines and "Connection: close" in lines
    # only the headers the engine needs are passed on (Host, framing and Connection are the proxy's)
    assert not any(line.lower().startswith(("keep-alive", "te:", "host: client", "x-custom")) for line in lines)


def test_head_ping(proxy, engine):
    r = exchange(proxy.port, b"HEAD /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(r) == 200 and r.endswith(b"\r\n\r\n")


def test_one_request_per_connection_nothing_unchecked_is_forwarded(proxy, engine):
    pipelined = (b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
                 + post("/v1.41/containers/create", PRIVILEGED)
                 + b"POST /v1.41/containers/abc/exec HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    r = exchange(proxy.port, pipelined)
    assert r.count(b"HTTP/1.1 ") == 1 and status(r) == 200
    assert len(engine.requests) == 1 and engine.requests[0][0].startswith("GET /_ping")


def test_a_keep_alive_client_just_reconnects(proxy, engine):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    for _ in range(3):
        conn.request("GET", "/v1.41/_ping")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"OK"
    conn.close()
    assert len(engine.requests) == 3


def test_a_denied_request_is_never_forwarded(proxy, engine):
    r = exchange(proxy.port, post("/v1.41/containers/create", PRIVILEGED))
    assert status(r) == 403
    message = json_body(r)["message"]
    assert message.startswith("docker-proxy: HostConfig.Privileged is not allowed") and message.endswith("(rule: privileged)")
    assert b"Content-Type: application/json" in r and b"Connection: close" in r
    r = exchange(proxy.port, b"HEAD /version HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(r) == 403 and r.endswith(b"\r\n\r\n")  # no body on HEAD
    assert engine.requests == []


def test_create_is_forwarded_with_its_body_and_the_id_is_remembered(proxy, engine):
    cid = create_id(proxy)
    (head, body), = engine.requests
    # the proxy's own serialisation of the checked fields, not the client's bytes
    assert same_json(body, GOOD) and "Content-Length: %d" % len(body) in head
    assert status(exchange(proxy.port, b"POST /v1.41/containers/%s/start HTTP/1.1\r\nHost: x\r\n\r\n" % cid.encode())) == 204
    other = secrets.token_hex(32).encode()
    r = exchange(proxy.port, b"POST /v1.41/containers/%s/start HTTP/1.1\r\nHost: x\r\n\r\n" % other)
    assert status(r) == 403 and "(rule: ownership)" in json_body(r)["message"]
    assert status(exchange(proxy.port, b"DELETE /v1.41/containers/%s?force=1 HTTP/1.1\r\nHost: x\r\n\r\n" % cid.encode())) == 204
    # removed: forgotten
    r = exchange(proxy.port, b"POST /v1.41/containers/%s/start HTTP/1.1\r\nHost: x\r\n\r\n" % cid.encode())
    assert status(r) == 403
    assert len(engine.requests) == 3


def test_a_chunked_create_response_is_understood(proxy, engine):
    cid = create_id(proxy, query="?name=chunky")
    assert status(exchange(proxy.port, b"POST /containers/%s/start HTTP/1.1\r\nHost: x\r\n\r\n" % cid.encode())) == 204


def test_a_chunked_request_body_is_forwarded_with_a_length(proxy, engine):
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(GOOD[i:i + 7]), GOOD[i:i + 7]) for i in range(0, len(GOOD), 7))
    raw = (b"POST /v1.41/containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           + chunks + b"0\r\nX-Trailer: y\r\n\r\n")
    assert status(exchange(proxy.port, raw)) == 201
    (head, body), = engine.requests
    assert same_json(body, GOOD) and "Transfer-Encoding" not in head and "Content-Length: %d" % len(body) in head


def test_request_bodies_up_to_1_mb(proxy, engine):
    big = {"Image": "downlink/astro:1", "HostConfig": {"NetworkMode": "bridge", "Memory": 1 << 26, "PidsLimit": 64}, "Env": ["X="]}
    big["Env"][0] += "a" * (1024 * 1024 - len(json.dumps(big).encode()))
    raw = json.dumps(big).encode()
    assert len(raw) == 1024 * 1024
    assert status(exchange(proxy.port, post("/containers/create", raw))) == 201
    r = exchange(proxy.port, post("/containers/create", raw + b" "))
    assert status(r) == 413 and "(rule: body-size)" in json_body(r)["message"]
    chunked = (b"POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"80000\r\n" + b"a" * 0x80000 + b"\r\n" + b"80001\r\n" + b"a" * 0x80001 + b"\r\n0\r\n\r\n")
    assert status(exchange(proxy.port, chunked)) == 413
    assert len(engine.requests) == 1


def test_expect_100_continue(proxy, engine):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(GOOD))
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(GOOD)
        assert s.recv(100).startswith(b"HTTP/1.1 201")
    assert "Expect" not in engine.requests[0][0]


@pytest.mark.parametrize("raw,code", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /_ping HTTP/2.0\r\nHost: x\r\n\r\n", 400),
    (b"GET  /_ping HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /_ping HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n", 400),
    (b"GET /_ping HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400),
    (b"GET /_ping HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
    (b"POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: magic\r\n\r\n{}}", 417),
    (b"GET /containers/../_ping HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /_ping HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
    (post("/containers/create", b"{not json"), 400),
], ids=lambda v: v[:40].decode("latin-1") if isinstance(v, bytes) else str(v))
def test_malformed_requests(proxy, engine, raw, code):
    r = exchange(proxy.port, raw)
    assert status(r) == code, r[:300]
    assert json_body(r)["message"].startswith("docker-proxy: ")
    assert engine.requests == []


def test_a_folded_header_never_reaches_the_engine_folded(proxy, engine):
    # h11 unfolds obs-fold (RFC 7230 3.2.4 lets a server do so); the proxy writes its own head
    r = exchange(proxy.port, b"GET /_ping HTTP/1.1\r\nHost: x\r\nUser-Agent: a\r\n b\r\n\r\n")
    assert status(r) == 200
    [(sent, _)] = engine.requests
    assert "User-Agent: a b" in sent.split("\r\n") and "\r\n " not in sent


def test_bare_lf_requests_are_understood(proxy, engine):
    assert status(exchange(proxy.port, b"GET /_ping HTTP/1.1\nHost: x\n\n")) == 200
    assert engine.requests[0][0].split("\r\n")[0] == "GET /_ping HTTP/1.1"


def test_a_body_on_another_endpoint_is_refused_unread(proxy, engine):
    cid = create_id(proxy)
    body = json.dumps({"Privileged": True, "Binds": ["/:/host"]}).encode()
    r = exchange(proxy.port, post(f"/v1.23/containers/{cid}/start", body))
    assert status(r) == 403 and "(rule: api-version)" in json_body(r)["message"]
    r = exchange(proxy.port, post(f"/v1.41/containers/{cid}/start", body))
    assert status(r) == 403 and "(rule: body)" in json_body(r)["message"]
    assert len(engine.requests) == 1


def test_attach_is_relayed_both_ways_after_the_upgrade(proxy, engine):
    cid = create_id(proxy).encode()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"POST /v1.41/containers/%s/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" % cid)
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 101 UPGRADED") and b"Upgrade: tcp" in head
        s.sendall(b"stdin data")
        assert s.recv(100) == b"echo:stdin data"
        s.shutdown(socket.SHUT_WR)  # passed on: the engine ends the stream
        rest = b""
        while True:
            chunk = s.recv(100)
            if not chunk:
                break
            rest += chunk
        assert rest == b"bye"
    head = engine.requests[1][0]
    assert "Connection: Upgrade" in head and "Upgrade: tcp" in head and "Connection: close" not in head


def test_attach_to_a_foreign_container_is_refused(proxy, engine):
    r = exchange(proxy.port, b"POST /v1.41/containers/%s/attach?stream=1 HTTP/1.1\r\nHost: x\r\n"
                             b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" % secrets.token_hex(32).encode())
    assert status(r) == 403 and engine.requests == []


def test_a_streamed_response_is_relayed_as_is(proxy, engine):
    cid = create_id(proxy)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("GET", f"/v1.41/containers/{cid}/logs?follow=1&stdout=1")
    resp = conn.getresponse()
    # de-chunked by h11 and passed on as it comes, the end of the body being the close
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") is None
    assert resp.getheader("Connection") == "close"
    assert resp.read() == b"line 0\nline 1\nline 2\n"


def test_a_client_that_goes_away_cancels_the_request_and_the_proxy_goes_on(proxy, engine):
    cid = create_id(proxy).encode()
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    s.sendall(b"POST /v1.41/containers/%s/wait HTTP/1.1\r\nHost: x\r\n\r\n" % cid)
    time.sleep(0.3)
    s.close()
    deadline = time.monotonic() + 5
    while not engine.events and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.events == ["wait aborted by the client"]
    # and a client that vanishes in the middle of its request
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Im")
    assert status(exchange(proxy.port, b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")) == 200
    assert proxy.proc.poll() is None


def test_a_slow_request_times_out(proxy, engine):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        r = s.recv(1000)
        assert status(r) == 408 and time.monotonic() - start < 5
    assert engine.requests == []


def test_no_engine_is_502(start_proxy, tmp_path):
    p = start_proxy(tmp_path / "missing.sock")
    r = exchange(p.port, b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(r) == 502 and "unreachable" in json_body(r)["message"]
    assert p.check() == 1


def test_healthcheck(proxy, engine):
    assert proxy.check() == 0
    assert engine.requests[0][0].startswith("GET /_ping HTTP/1.1")


def test_many_clients_at_once(proxy, engine):
    results = []

    def one():
        results.append(status(exchange(proxy.port, b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")))
    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 50


def test_connection_limit(engine, start_proxy):
    p = start_proxy(engine.server_address, PROXY_MAX_CONNECTIONS="2", PROXY_REQUEST_TIMEOUT="5")
    time.sleep(0.5)  # the start-up probe's connection is let go
    idle = [socket.create_connection(("127.0.0.1", p.port)) for _ in range(2)]
    for s in idle:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")  # half a request: each holds its slot
    time.sleep(0.3)
    r = exchange(p.port, b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(r) == 503
    for s in idle:
        s.close()
    time.sleep(0.3)
    assert status(exchange(p.port, b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")) == 200


def test_one_log_line_per_request_without_bodies(proxy, engine):
    cid = create_id(proxy)
    exchange(proxy.port, post("/v1.41/containers/create", PRIVILEGED))
    exchange(proxy.port, b"POST /v1.41/containers/%s/exec HTTP/1.1\r\nHost: x\r\n\r\n" % cid.encode())
    exchange(proxy.port, b"NONSENSE\r\n\r\n")
    time.sleep(0.2)
    lines = [line for line in proxy.log_text().splitlines() if "listening on" not in line]
    assert len(lines) == 4, lines
    assert "ALLOW POST /v1.41/containers/create rule=containers.create" in lines[0]
    assert "DENY  403 POST /v1.41/containers/create rule=privileged reason=HostConfig.Privileged" in lines[1]
    assert f"DENY  403 POST /v1.41/containers/{cid}/exec rule=endpoint" in lines[2]
    assert "DENY  400" in lines[3] and "rule=malformed" in lines[3]
    assert "hunter2" not in proxy.log_text()


def test_sigterm_stops_it(proxy):
    proxy.proc.send_signal(signal.SIGTERM)
    assert proxy.proc.wait(timeout=5) == 0


def test_a_container_named_by_its_name_is_reached_by_its_id(proxy, engine):
    cid = create_id(proxy, query="?name=downlink-chain-step-0123")
    r = exchange(proxy.port, b"GET /v1.41/containers/downlink-chain-step-0123/json HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(r) == 200 and json_body(r)["Id"] == cid
    r = exchange(proxy.port, b"DELETE /v1.41/containers/downlink-chain-step-0123?force=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(r) == 204
    sent = [head.split("\r\n")[0] for head, _ in engine.requests]
    assert sent[-1] == f"DELETE /v1.41/containers/{cid}?force=1 HTTP/1.1"  # sent with the checked id
    assert sent[-2] == "GET /containers/downlink-chain-step-0123/json HTTP/1.1"  # the proxy's lookup
    assert "(downlink-chain-step-0123 = " + cid[:12] + ")" in proxy.log_text()
    # a prefix of the id works the same way
    cid2 = create_id(proxy, query="?name=other")
    engine.names[cid2[:12]] = cid2
    assert status(exchange(proxy.port, b"POST /containers/%s/start HTTP/1.1\r\nHost: x\r\n\r\n" % cid2[:12].encode())) == 204


def test_an_unknown_name_is_404_and_a_foreign_one_403(proxy, engine):
    # 404: what StepOperator's adoption of an earlier try's container expects when there is none
    r = exchange(proxy.port, b"GET /v1.41/containers/downlink-never-created/json HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(r) == 404 and json_body(r)["message"] == "docker-proxy: No such container: downlink-never-created"
    r = exchange(proxy.port, b"DELETE /v1.41/containers/someone-elses?force=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(r) == 403 and "(rule: ownership)" in json_body(r)["message"]
    assert all(head.startswith("GET /containers/") for head, _ in engine.requests)  # lookups only


def test_the_state_file_keeps_the_containers_across_a_restart(engine, start_proxy, tmp_path):
    state = tmp_path / "owned"
    first = start_proxy(engine.server_address, PROXY_STATE_FILE=str(state))
    cid = create_id(first, query="?name=lost-step")
    first.stop()
    second = start_proxy(engine.server_address, PROXY_STATE_FILE=str(state))
    assert "1 known containers" in second.log_text()
    assert status(exchange(second.port, b"GET /containers/lost-step/json HTTP/1.1\r\nHost: x\r\n\r\n")) == 200
    assert status(exchange(second.port, b"POST /containers/%s/wait HTTP/1.1\r\nHost: x\r\n\r\n" % cid.encode())) == 200
    third = start_proxy(engine.server_address)  # without the file: it knows nothing
    assert status(exchange(third.port, b"POST /containers/%s/wait HTTP/1.1\r\nHost: x\r\n\r\n" % cid.encode())) == 403


def test_an_unusable_state_file_stops_it_at_once(engine, tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, str(PROXY_DIR / "proxy.py"), "--listen", "127.0.0.1:0"],
                       env={"PROXY_STATE_FILE": str(tmp_path / "no" / "such" / "dir" / "owned"),
                            "PROXY_UPSTREAM": engine.server_address}, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "PROXY_STATE_FILE" in r.stderr


def test_healthcheck_pings_are_not_logged_unless_asked(engine, start_proxy):
    quiet = start_proxy(engine.server_address)
    assert quiet.check() == 0 and status(exchange(quiet.port, b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")) == 200
    exchange(quiet.port, b"GET /v1.41/containers/json HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    lines = [line for line in quiet.log_text().splitlines() if "listening on" not in line]
    assert len(lines) == 1 and "DENY  403 GET /v1.41/containers/json" in lines[0]
    loud = start_proxy(engine.server_address, PROXY_LOG_LOCAL_PINGS="1")
    assert loud.check() == 0
    time.sleep(0.2)
    assert "ALLOW GET /_ping rule=ping" in loud.log_text()
