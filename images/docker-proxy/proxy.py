#!/usr/bin/env python3
"""docker-proxy: a restricted Docker Engine API proxy ("nothing lost, no one let in").

Listens on TCP (PROXY_LISTEN, default 0.0.0.0:2375) and forwards to the engine's unix socket
(PROXY_UPSTREAM, default /var/run/docker.sock) only the requests DockerOperator needs; everything
else gets 403 with {"message": "docker-proxy: <reason> (rule: <rule>)"}. What is allowed is in
docker_proxy_policy.py. Python 3 standard library only.

How a connection is handled:
  - one request per connection: the request line and headers are parsed here and re-written
    (so the engine parses exactly what was checked), sent upstream with `Connection: close`, and
    the response goes back with `Connection: close`; anything the client sends after its request
    is never forwarded (except the stdin stream of an allowed attach);
  - only POST /containers/create may carry a body: up to PROXY_MAX_BODY bytes (413 beyond),
    Content-Length or chunked (re-sent upstream with a Content-Length);
  - the ids in create responses are remembered (PROXY_TRACK_MAX, oldest forgotten first; kept
    in PROXY_STATE_FILE when set, so that a restart forgets nothing): the container endpoints
    only work on those. A container named by a name or id prefix is looked up in the engine
    first, and the request is decided on, and sent with, its full id (404 when there is none);
  - attach is an HTTP upgrade: after the check, bytes are relayed both ways until one side closes;
  - no timeout once a request is forwarded (wait and attach last as long as the step), a
    timeout (PROXY_REQUEST_TIMEOUT, 60 s) on reading the request itself;
  - malformed requests get 400, an unreachable engine 502, too many connections
    (PROXY_MAX_CONNECTIONS, 512) 503; a thread per connection.
  - one log line per request on stderr: decision, status, method, path, rule, reason (no
    bodies); successful pings from loopback (the healthcheck) are not logged unless
    PROXY_LOG_LOCAL_PINGS=1.

Usage: proxy.py [--listen HOST:PORT] [--upstream PATH]     serve
       proxy.py --check                                      GET /_ping through the proxy (healthcheck)

Configuration (environment): PROXY_ALLOWED_IMAGES, PROXY_ALLOWED_NETWORKS,
PROXY_ALLOWED_BIND_SOURCES, PROXY_ALLOWED_VOLUMES, PROXY_DENY_ROOT, PROXY_ALLOW_INFO (see
docker_proxy_policy.Config), PROXY_STATE_FILE, and the ones above.
"""
import argparse
import errno
import json
import os
import re
import selectors
import signal
import socket
import socketserver
import sys
import threading
import time
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import docker_proxy_policy as policy  # noqa: E402

MAX_HEAD = 64 * 1024
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
    "upgrade", "expect", "content-length", "host", "proxy-authorization", "proxy-authenticate",
}
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
REQUEST_LINE = re.compile(rb"([A-Z]+) (\S+) HTTP/1\.([01])\Z")
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})(?: .*)?\Z")
HEAD_END = re.compile(rb"\r?\n\r?\n")
REASONS = {
    100: "Continue", 400: "Bad Request", 403: "Forbidden", 408: "Request Timeout",
    413: "Payload Too Large", 417: "Expectation Failed", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
}


class ClientGone(Exception):
    """The client closed its connection while its request was being served."""


class HttpError(Exception):
    def __init__(self, status, message, rule="http"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.rule = rule


class Settings:
    def __init__(self, env, listen=None, upstream=None):
        self.listen = listen or env.get("PROXY_LISTEN") or "0.0.0.0:2375"
        self.upstream = upstream or env.get("PROXY_UPSTREAM") or "/var/run/docker.sock"
        self.max_body = int(env.get("PROXY_MAX_BODY") or 1024 * 1024)
        self.request_timeout = float(env.get("PROXY_REQUEST_TIMEOUT") or 60)
        self.connect_timeout = float(env.get("PROXY_CONNECT_TIMEOUT") or 10)
        self.max_connections = int(env.get("PROXY_MAX_CONNECTIONS") or 512)
        self.track_max = int(env.get("PROXY_TRACK_MAX") or 10000)
        self.state_file = env.get("PROXY_STATE_FILE") or None
        self.log_local_pings = (env.get("PROXY_LOG_LOCAL_PINGS") or "").lower() in policy.TRUE_WORDS
        self.policy = policy.Config.from_env(env)


def split_hostport(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


# --------------------------------------------------------------------------------------------
# Logging: one line per request

_log_lock = threading.Lock()


def log(line):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    with _log_lock:
        sys.stderr.write(f"{stamp} docker-proxy {line}\n")
        sys.stderr.flush()


def printable(text, limit=200):
    text = text if isinstance(text, str) else text.decode("latin-1")
    text = "".join(c if 0x20 <= ord(c) < 0x7f else "?" for c in text)
    return text[:limit] + ("..." if len(text) > limit else "")


# --------------------------------------------------------------------------------------------
# Reading HTTP off a socket


class Reader:
    """Buffered reads from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def head(self, limit=MAX_HEAD):
        """Bytes up to the empty line that ends the head (which is consumed)."""
        start = 0
        while True:
            m = HEAD_END.search(self.buf, max(0, start - 3))
            if m and m.start() > limit:
                raise HttpError(431, "request head too large", "head-size")
            if m:
                head = bytes(self.buf[:m.start()])
                del self.buf[:m.end()]
                return head
            if len(self.buf) > limit:
                raise HttpError(431, "request head too large", "head-size")
            start = len(self.buf)
            self.fill()

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def line(self, limit=4096):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buf) > limit:
                raise HttpError(400, "chunk line too long")
            self.fill()

    def chunked(self, limit):
        """A chunked body, decoded; HttpError 413 beyond limit bytes."""
        out = bytearray()
        while True:
            size_line = self.line().split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9a-fA-F]{1,8}", size_line):
                raise HttpError(400, "bad chunk size in the chunked body")
            size = int(size_line, 16)
            if size == 0:
                while self.line():  # trailers, discarded
                    pass
                return bytes(out)
            if len(out) + size > limit:
                raise HttpError(413, f"request body larger than {limit} bytes", "body-size")
            out += self.exactly(size)
            if self.line() != b"":
                raise HttpError(400, "chunk not followed by CRLF")

    def until_eof(self, limit):
        data = bytearray(self.buf)
        self.buf.clear()
        while len(data) <= limit:
            chunk = self.sock.recv(65536)
            if not chunk:
                return bytes(data)
            data += chunk
        raise HttpError(502, "upstream response too large to inspect")


def parse_head(head):
    """Request head bytes -> (method, target, minor version, [(name, value)])."""
    lines = re.split(rb"\r?\n", head)
    m = REQUEST_LINE.match(lines[0])
    if not m:
        raise HttpError(400, f"malformed request line {printable(lines[0], 100)!r}", "malformed")
    headers = []
    for raw in lines[1:]:
        if raw[:1] in (b" ", b"\t"):
            raise HttpError(400, "folded header lines are not accepted", "malformed")
        name, sep, value = raw.partition(b":")
        if not sep or not TOKEN.match(name):
            raise HttpError(400, f"malformed header line {printable(raw, 100)!r}", "malformed")
        value = value.strip(b" \t")
        if any(b in value for b in (b"\r", b"\0", b"\n")):
            raise HttpError(400, "control character in a header value", "malformed")
        headers.append((name.decode("ascii"), value.decode("latin-1")))
    return m.group(1).decode(), m.group(2).decode("latin-1"), int(m.group(3)), headers


def header_values(headers, name):
    return [v for k, v in headers if k.lower() == name]


def body_framing(headers):
    """('none'|'length'|'chunked', length) for a request, or HttpError 400."""
    te = header_values(headers, "transfer-encoding")
    cl = header_values(headers, "content-length")
    if te and cl:
        raise HttpError(400, "both Transfer-Encoding and Content-Length", "malformed")
    if te:
        if len(te) != 1 or te[0].strip().lower() != "chunked":
            raise HttpError(400, f"Transfer-Encoding {', '.join(te)!r} is not supported (only chunked)", "malformed")
        return "chunked", None
    if cl:
        values = {v.strip() for v in ",".join(cl).split(",")}
        if len(values) != 1 or not re.fullmatch(r"[0-9]{1,15}", next(iter(values))):
            raise HttpError(400, "bad Content-Length", "malformed")
        n = int(next(iter(values)))
        return ("length", n) if n else ("none", 0)
    return "none", 0


# --------------------------------------------------------------------------------------------
# Writing


def json_response(status, message, head_only=False):
    body = json.dumps({"message": message}).encode() + b"\n"
    head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    return head if head_only else head + body


def close_gracefully(sock, drain_seconds=1.0):
    """Half-close, then read (and drop) what the client still sends for a moment, so that it
    gets our response instead of a connection reset."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + drain_seconds
        drained = 0
        while drained < 16 * 1024 * 1024:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                break
            drained += len(data)
    except OSError:
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass


def rewrite_response_head(head):
    """The upstream response head for the client: `Connection: close` instead of keep-alive."""
    lines = re.split(rb"\r?\n", head)
    out = [lines[0]]
    for line in lines[1:]:
        name = line.split(b":", 1)[0].strip().lower()
        if name in (b"connection", b"keep-alive", b"proxy-connection"):
            continue
        out.append(line)
    out.append(b"Connection: close")
    return b"\r\n".join(out) + b"\r\n\r\n"


def response_body(head, data):
    """The body of a complete upstream response (de-chunked when needed)."""
    lines = re.split(rb"\r?\n", head)
    chunked = any(line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower() for line in lines)
    if not chunked:
        return data
    out, pos = bytearray(), 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2:end + 2 + size]
        pos = end + 2 + size + 2


# --------------------------------------------------------------------------------------------
# The proxy


class Proxy:
    def __init__(self, settings):
        self.settings = settings
        self.config = settings.policy
        self.owned = policy.OwnedContainers(settings.track_max, settings.state_file)

    # -- upstream

    def connect_upstream(self):
        """A connection to the engine's socket. A full listen queue (EAGAIN: a unix socket does
        not queue like TCP) is retried for up to PROXY_CONNECT_TIMEOUT."""
        deadline = time.monotonic() + self.settings.connect_timeout
        delay = 0.005
        while True:
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.settimeout(self.settings.connect_timeout)
            try:
                up.connect(self.settings.upstream)
                up.settimeout(None)
                return up
            except OSError as e:
                up.close()
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK) and time.monotonic() + delay < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.2)
                    continue
                raise HttpError(502, f"the Docker engine at {self.settings.upstream} is unreachable: "
                                f"{e.strerror or e}", "upstream")

    def upstream_get(self, path, limit=16 * 1024 * 1024):
        """(status, parsed JSON body or None) of a GET on the engine, for the proxy's own lookups."""
        up = self.connect_upstream()
        try:
            up.settimeout(30)
            up.sendall(f"GET {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".encode())
            r = Reader(up)
            head = r.head()
            m = STATUS_LINE.match(re.split(rb"\r?\n", head)[0])
            if not m:
                raise HttpError(502, "malformed response from the Docker engine", "upstream")
            data = response_body(head, r.until_eof(limit))
            try:
                return int(m.group(1)), json.loads(data) if data.strip() else None
            except ValueError:
                return int(m.group(1)), None
        except (OSError, EOFError) as e:
            raise HttpError(502, f"the Docker engine failed: {e}", "upstream")
        finally:
            up.close()

    def resolve_container(self, ref):
        """The full id of the container the engine knows as `ref` (a name or id prefix), or None
        when there is none."""
        status, info = self.upstream_get(f"/containers/{quote(ref, safe='')}/json")
        if status == 404:
            return None
        if status != 200 or not isinstance(info, dict) or not policy.FULL_ID.fullmatch(str(info.get("Id"))):
            raise HttpError(502, f"the Docker engine answered {status} when asked for container {ref!r}", "upstream")
        return info["Id"]

    def image_user(self, image):
        """The User image runs as ("" = the image's default, root), None when there is no such
        image. Used for PROXY_DENY_ROOT."""
        status, info = self.upstream_get(f"/images/{quote(image, safe='/:')}/json")
        if status == 404:
            return None
        if status != 200 or not isinstance(info, dict):
            raise RuntimeError(f"the engine answered {status}")
        return (info.get("Config") or {}).get("User") or ""

    # -- one client connection

    def handle(self, client, peer):
        client.settimeout(self.settings.request_timeout)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        reader = Reader(client)
        method = target = "-"
        head_only = False
        try:
            try:
                head = reader.head()
            except EOFError:
                return  # connected and closed without a request (e.g. a port check)
            method, target, minor, headers = parse_head(head)
            head_only = method == "HEAD"
            if len(header_values(headers, "host")) > 1:
                raise HttpError(400, "more than one Host header", "malformed")
            framing, length = body_framing(headers)
            decision = policy.check_head(method, target, framing != "none", self.config, self.owned)
            resolved = ""
            if decision.resolve:
                # a name or id prefix: decide on the full id it stands for, and send that
                ref = decision.container
                full_id = self.resolve_container(ref)
                if full_id is None:
                    log(f"MISS  404 {method} {printable(target.split('?')[0])} rule=ownership reason=no such container")
                    client.sendall(json_response(404, f"docker-proxy: No such container: {ref}", head_only))
                    return
                target = policy.with_container_id(target, full_id)
                decision = policy.check_head(method, target, framing != "none", self.config, self.owned)
                resolved = f" ({printable(ref, 80)} = {full_id[:12]})"
            body = b""
            if decision.allowed and decision.action == "create":
                if framing == "length" and length > self.settings.max_body:
                    raise HttpError(413, f"request body larger than {self.settings.max_body} bytes", "body-size")
                expect = header_values(headers, "expect")
                if expect:
                    if expect[0].strip().lower() != "100-continue":
                        raise HttpError(417, "unsupported Expect header", "malformed")
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                if framing == "length":
                    body = reader.exactly(length)
                elif framing == "chunked":
                    body = reader.chunked(self.settings.max_body)
                decision = policy.check_create(
                    body, self.config, self.image_user if self.config.deny_root else None)
            if not decision.allowed:
                log(f"DENY  {decision.status} {method} {printable(target.split('?')[0])} "
                    f"rule={decision.rule} reason={printable(decision.reason, 300)}{resolved}")
                client.sendall(json_response(decision.status, decision.message(), head_only))
                return
            if not (decision.rule == "ping" and peer[0] in ("127.0.0.1", "::1") and not self.settings.log_local_pings):
                # (the image's healthcheck pings every 10 s: not logged unless PROXY_LOG_LOCAL_PINGS=1)
                log(f"ALLOW {method} {printable(target.split('?')[0])} rule={decision.rule}{resolved}")
            self.forward(client, reader, method, target, headers, body, decision)
        except HttpError as e:
            label = "DENY " if e.status < 500 else "ERROR"
            log(f"{label} {e.status} {method} {printable(target.split('?')[0])} rule={e.rule} reason={printable(e.message, 300)}")
            try:
                client.sendall(json_response(e.status, f"docker-proxy: {e.message} (rule: {e.rule})", head_only))
            except OSError:
                pass
        except ClientGone:
            log(f"ERROR -   {method} {printable(target.split('?')[0])} reason=the client went away before "
                "the engine answered (request cancelled)")
        except (socket.timeout, TimeoutError):
            log(f"ERROR 408 {method} {printable(target.split('?')[0])} reason=timed out reading the request")
            try:
                client.sendall(json_response(408, "docker-proxy: timed out reading the request"))
            except OSError:
                pass
        except EOFError:
            log(f"ERROR -   {method} {printable(target.split('?')[0])} reason=client closed mid-request")
        except (ConnectionError, BrokenPipeError):
            log(f"ERROR -   {method} {printable(target.split('?')[0])} reason=client disconnected")
        except Exception as e:  # never let one connection take the server down
            log(f"ERROR 500 {method} {printable(target.split('?')[0])} reason={type(e).__name__}: {printable(str(e))}")
            try:
                client.sendall(json_response(500, f"docker-proxy: internal error: {type(e).__name__}"))
            except OSError:
                pass
        finally:
            close_gracefully(client)

    def forward(self, client, reader, method, target, headers, body, decision):
        upgrade = decision.action == "attach" and header_values(headers, "upgrade")
        lines = [f"{method} {target} HTTP/1.1", "Host: docker"]
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                lines.append(f"{name}: {value}")
        if decision.action == "create":
            lines.append(f"Content-Length: {len(body)}")
        if upgrade:
            lines += ["Connection: Upgrade", f"Upgrade: {upgrade[0]}"]
        else:
            lines.append("Connection: close")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

        up = self.connect_upstream()
        try:
            try:
                up.sendall(request)
                upstream = Reader(up)
                head = self.response_head(upstream, client, reader, decision.action == "attach")
            except (OSError, EOFError, HttpError) as e:
                raise HttpError(502, f"the Docker engine closed the connection or failed: {e}", "upstream")
            m = STATUS_LINE.match(re.split(rb"\r?\n", head)[0])
            if not m:
                raise HttpError(502, "malformed response from the Docker engine", "upstream")
            status = int(m.group(1))
            client.settimeout(None)
            if status == 101:
                client.sendall(head + b"\r\n\r\n")
            else:
                head = rewrite_response_head(head)
                if decision.action == "create":
                    # Remember the new container before the client can use its id.
                    data = upstream.until_eof(self.settings.max_body)
                    if status == 201:
                        self.remember(head, data)
                    client.sendall(head + data)
                    return
                client.sendall(head)
            if decision.action == "remove" and status in (200, 204):
                self.owned.discard(decision.container)
            leftover = bytes(reader.buf) if decision.action == "attach" else b""
            relay(client, up, bytes(upstream.buf), leftover, both_ways=decision.action == "attach")
        finally:
            try:
                up.close()
            except OSError:
                pass

    def response_head(self, upstream, client, reader, attach):
        """The engine's response head. Meanwhile the client is watched: when it goes away the
        request is abandoned (closing the upstream connection cancels it in the engine, e.g. a
        wait); what it sends is kept for an attach (stdin), otherwise dropped."""
        with selectors.DefaultSelector() as sel:
            sel.register(upstream.sock, selectors.EVENT_READ, "up")
            sel.register(client, selectors.EVENT_READ, "client")
            while True:
                for key, _ in sel.select():
                    if key.data == "up":
                        m = HEAD_END.search(upstream.buf)
                        if m is None:
                            if len(upstream.buf) > MAX_HEAD:
                                raise HttpError(502, "response head too large", "upstream")
                            upstream.fill()
                            m = HEAD_END.search(upstream.buf)
                        if m:
                            head = bytes(upstream.buf[:m.start()])
                            del upstream.buf[:m.end()]
                            return head
                    else:
                        data = recv_or_eof(client)
                        if not data:
                            raise ClientGone
                        if attach:
                            reader.buf += data
                        else:
                            reader.buf.clear()

    def remember(self, head, data):
        try:
            info = json.loads(response_body(head, data))
            cid = info["Id"]
        except (ValueError, KeyError, TypeError) as e:
            log(f"ERROR create response without an Id ({type(e).__name__}): the container cannot be used")
            return
        if isinstance(cid, str) and re.fullmatch(r"[0-9a-f]{64}", cid):
            self.owned.add(cid)


def recv_or_eof(sock):
    """The next bytes from a socket; b"" when it is closed or broken (both end the relay)."""
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def relay(client, up, pending_up, pending_client, both_ways):
    """Copy the upstream response to the client until the engine closes. With both_ways (an
    attach), the client's bytes go to the engine too, and a client's half-close is passed on.
    Otherwise what the client sends is dropped and its closing aborts the request upstream."""
    if pending_up:
        client.sendall(pending_up)
    if pending_client:
        up.sendall(pending_client)
    sel = selectors.DefaultSelector()
    try:
        sel.register(up, selectors.EVENT_READ, "up")
        sel.register(client, selectors.EVENT_READ, "client")
        dropped = 0
        while True:
            for key, _ in sel.select():
                if key.data == "up":
                    data = recv_or_eof(up)
                    if not data:
                        return
                    client.sendall(data)
                else:
                    data = recv_or_eof(client)
                    if not data:
                        if not both_ways:
                            return  # the client is gone: stop (closing upstream cancels it)
                        sel.unregister(client)
                        try:
                            up.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                    elif both_ways:
                        up.sendall(data)
                    else:
                        dropped += len(data)  # never forwarded: it was not checked
                        if dropped > 1024 * 1024:
                            return
    finally:
        sel.close()


# --------------------------------------------------------------------------------------------
# Server


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, proxy, address):
        host, _ = address
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.proxy = proxy
        self.slots = threading.BoundedSemaphore(proxy.settings.max_connections)
        super().__init__(address, None)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            try:
                request.sendall(json_response(503, "docker-proxy: too many connections"))
            except OSError:
                pass
            log(f"ERROR 503 - - reason=too many connections (PROXY_MAX_CONNECTIONS={self.proxy.settings.max_connections})")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            self.proxy.handle(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address):
        log(f"ERROR unexpected failure on a connection from {client_address}")


def check(settings):
    """GET /_ping through the proxy: exit 0 when the engine answers OK."""
    host, port = split_hostport(settings.listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        print(f"docker-proxy check: cannot reach {host}:{port}: {e}", file=sys.stderr)
        return 1
    head, _, body = data.partition(b"\r\n\r\n")
    first = head.split(b"\r\n")[0].decode("latin-1")
    if first.split(" ")[1:2] == ["200"] and body.strip() == b"OK":
        return 0
    print(f"docker-proxy check: {first} {printable(body, 300)}", file=sys.stderr)
    return 1


def main(argv=None):
    parser = argparse.ArgumentParser(description="A restricted Docker Engine API proxy.")
    parser.add_argument("--listen", help="HOST:PORT to listen on (PROXY_LISTEN, default 0.0.0.0:2375)")
    parser.add_argument("--upstream", help="the engine's unix socket (PROXY_UPSTREAM, default /var/run/docker.sock)")
    parser.add_argument("--check", action="store_true", help="GET /_ping through the proxy and exit 0 if OK")
    args = parser.parse_args(argv)
    try:
        settings = Settings(os.environ, args.listen, args.upstream)
    except ValueError as e:
        print(f"docker-proxy: bad configuration: {e}", file=sys.stderr)
        return 2
    if args.check:
        return check(settings)
    try:
        proxy = Proxy(settings)
    except OSError as e:
        print(f"docker-proxy: cannot use PROXY_STATE_FILE={settings.state_file}: {e}", file=sys.stderr)
        return 2
    server = Server(proxy, split_hostport(settings.listen))
    if not os.access(settings.upstream, os.R_OK | os.W_OK):
        log(f"WARNING cannot open {settings.upstream} (missing, or not in its group): requests will get 502")

    def stop(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"listening on {settings.listen}, engine {settings.upstream}; {settings.policy.describe()}; "
        f"{len(proxy.owned)} known containers" + (f" (state {settings.state_file})" if settings.state_file else ""))
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
