#!/usr/bin/env python3
"""docker-proxy: a restricted Docker Engine API proxy ("nothing lost, no one let in").

Listens on TCP (PROXY_LISTEN, default 0.0.0.0:2375) and forwards to the engine's unix socket
(PROXY_UPSTREAM, default /var/run/docker.sock) only the requests DockerOperator needs; everything
else gets 403 with {"message": "docker-proxy: <reason> (rule: <rule>)"}. What is allowed is in
docker_proxy_policy.py and docker_proxy_create.py. Python 3 and h11.

How a connection is handled:
  - HTTP is parsed and framed by h11 (a well-kept HTTP/1.1 implementation), on the client's side
    and on the engine's: the proxy never splits requests or responses itself;
  - one request per connection: the request line is decided on first (policy.check_head: route,
    query parameters, API version within the engine's own range), then, for a create, the body;
    the request sent upstream is built from the checked parts (Host, User-Agent, Accept and
    the proxy's own framing; a create's body is the proxy's serialisation of the checked fields)
    with `Connection: close`; the response goes back with `Connection: close`. Anything the
    client sends after its request is never forwarded (pipelined requests are dropped), except
    the stdin stream of an attach that the engine switched to a raw stream;
  - attach: relayed raw both ways only after the engine's `101 Switching Protocols` (or, for an
    attach without Upgrade, its raw-stream 200); any other answer (an error) is passed back and
    both connections are closed;
  - only POST /containers/create may carry a body: up to PROXY_MAX_BODY bytes (413 beyond);
  - the ids in create responses are remembered (PROXY_TRACK_MAX, oldest forgotten first; kept
    in PROXY_STATE_FILE when set, so that a restart forgets nothing): the container endpoints
    only work on those. A container named by a name or id prefix is looked up in the engine
    first, and the request is decided on, and sent with, its full id (404 when there is none);
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
PROXY_ALLOWED_BIND_SOURCES, PROXY_ALLOWED_RW_BIND_SOURCES, PROXY_ALLOWED_VOLUMES, PROXY_DENY_ROOT (see
docker_proxy_policy.Config), PROXY_STATE_FILE, and the ones above.
"""
import argparse
import errno
import json
import os
import selectors
import signal
import socket
import socketserver
import sys
import threading
import time
from urllib.parse import quote

import h11  # noqa: E402

import docker_proxy_policy as policy  # noqa: E402

MAX_HEAD = 64 * 1024
# The engine's API version range is asked once and kept this long (an engine upgrade is seen).
API_RANGE_TTL = 300
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
# HTTP: h11 parses and frames every message, on both sides. The proxy writes only its own
# responses' heads (and the engine's, re-written), always with `Connection: close`.

# Request headers passed on to the engine (all others are dropped; Host, framing and
# Connection are the proxy's own).
FORWARD_HEADERS = {b"user-agent", b"accept", b"content-type"}
# Response headers not passed back (framing and connection management are the proxy's).
RESPONSE_DROP = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                 b"upgrade", b"trailer", b"te"}
RAW_STREAM_TYPES = (b"application/vnd.docker.raw-stream", b"application/vnd.docker.multiplexed-stream")


def json_response(status, message, head_only=False):
    body = json.dumps({"message": message}).encode() + b"\n"
    head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    return head if head_only else head + body


def response_head(event, keep=(), extra=()):
    """The head of an engine response (h11 event) for the client: its status and headers minus
    framing and connection ones, plus `Connection: close` (the body then ends at the close,
    unless it has a Content-Length)."""
    reason = event.reason or REASONS.get(event.status_code, "").encode()
    lines = [b"HTTP/1.1 %d %s" % (event.status_code, reason)]
    for name, value in event.headers.raw_items():  # as the engine spelled them
        if name.lower() not in RESPONSE_DROP or name.lower() in keep:
            lines.append(name + b": " + value)
    lines += [b"%s: %s" % kv for kv in extra]
    if not keep:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


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


def recv_or_eof(sock):
    """The next bytes from a socket; b"" when it is closed or broken."""
    try:
        return sock.recv(65536)
    except OSError:
        return b""


class Upstream:
    """One request to the engine over its socket, framed and parsed by an h11 client."""

    def __init__(self, sock):
        self.sock = sock
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)

    def send(self, *events):
        self.sock.sendall(b"".join(self.conn.send(e) or b"" for e in events))

    def feed(self, data):
        self.conn.receive_data(data)

    def next_event(self, block=True):
        """The next h11 event; with block=False, h11.NEED_DATA when the socket has to be read."""
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as e:
                raise HttpError(502, f"malformed response from the Docker engine: {e}", "upstream") from None
            if event is h11.NEED_DATA and block:
                self.feed(self.sock.recv(65536))
                continue
            return event

    def body(self, limit):
        """The rest of a response body, whole (HttpError 502 beyond limit bytes)."""
        out = bytearray()
        while True:
            event = self.next_event()
            if isinstance(event, h11.Data):
                out += event.data
                if len(out) > limit:
                    raise HttpError(502, "upstream response too large to inspect", "upstream")
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return bytes(out)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def read_request(client, max_body, allow_body):
    """(h11 connection, Request event, body bytes) of the one request on this connection;
    `allow_body(request) -> bool` is asked before a body is read (a refused request's body is
    never read). None when the client closed before sending anything."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    request, body = None, bytearray()

    def next_event():
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as e:
                status = e.error_status_hint if e.error_status_hint in (400, 413, 431, 501) else 400
                raise HttpError(status, f"malformed request: {e}", "malformed") from None
            if event is h11.NEED_DATA:
                data = client.recv(65536)
                if not data and request is None and not conn.trailing_data[0]:
                    return None
                conn.receive_data(data)
                continue
            return event

    event = next_event()
    if event is None or isinstance(event, h11.ConnectionClosed):
        return None
    request = event
    if request.http_version not in (b"1.0", b"1.1"):
        raise HttpError(400, f"HTTP/{request.http_version.decode('latin-1')} is not supported", "malformed")
    if sum(len(n) + len(v) + 4 for n, v in request.headers) + len(request.target) > MAX_HEAD:
        # (h11 bounds a head that arrives in pieces; this one arrived whole)
        raise HttpError(431, "request head too large", "head-size")
    names = [n for n, _ in request.headers]
    if b"content-length" in names and b"transfer-encoding" in names:
        raise HttpError(400, "both Transfer-Encoding and Content-Length", "malformed")
    if names.count(b"host") > 1:
        raise HttpError(400, "more than one Host header", "malformed")
    has_body = b"transfer-encoding" in names or any(
        n == b"content-length" and v.strip() != b"0" for n, v in request.headers)
    if not allow_body(request, has_body):
        return conn, request, None
    if has_body:
        length = [int(v) for n, v in request.headers if n == b"content-length"]
        if length and length[0] > max_body:
            raise HttpError(413, f"request body larger than {max_body} bytes", "body-size")
        expect = [v for n, v in request.headers if n == b"expect"]
        if expect and expect[0].lower() != b"100-continue":
            raise HttpError(417, "unsupported Expect header", "malformed")
        if conn.they_are_waiting_for_100_continue:
            client.sendall(conn.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")))
    while True:
        event = next_event()
        if event is None or isinstance(event, h11.ConnectionClosed):
            raise EOFError
        if isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_body:
                raise HttpError(413, f"request body larger than {max_body} bytes", "body-size")
        elif isinstance(event, h11.EndOfMessage):
            return conn, request, bytes(body)

# --------------------------------------------------------------------------------------------
# The proxy


class Proxy:
    def __init__(self, settings):
        self.settings = settings
        self.config = settings.policy
        self.owned = policy.OwnedContainers(settings.track_max, settings.state_file)
        self._api_lock = threading.Lock()
        self._api_range = None

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
                                f"{e.strerror or e}", "upstream") from None

    def upstream_get(self, path, limit=16 * 1024 * 1024):
        """(status, parsed JSON body or None) of a GET on the engine, for the proxy's own lookups."""
        up = Upstream(self.connect_upstream())
        try:
            up.sock.settimeout(30)
            up.send(h11.Request(method="GET", target=path, headers=[("Host", "docker"), ("Connection", "close")]),
                    h11.EndOfMessage())
            event = up.next_event()
            while isinstance(event, h11.InformationalResponse):
                event = up.next_event()
            data = up.body(limit)
            try:
                return event.status_code, json.loads(data) if data.strip() else None
            except ValueError:
                return event.status_code, None
        except (OSError, h11.ProtocolError) as e:
            raise HttpError(502, f"the Docker engine failed: {e}", "upstream") from None
        finally:
            up.close()

    def api_range(self):
        """The engine's (MinAPIVersion, ApiVersion), asked once and kept for API_RANGE_TTL s."""
        now = time.monotonic()
        with self._api_lock:
            if self._api_range and now - self._api_range[0] < API_RANGE_TTL:
                return self._api_range[1]
        status, info = self.upstream_get("/version")
        try:
            if status != 200:
                raise ValueError(f"status {status}")
            found = (policy.parse_version(info["MinAPIVersion"]), policy.parse_version(info["ApiVersion"]))
        except (ValueError, KeyError, TypeError) as e:
            raise HttpError(502, f"the Docker engine did not tell its API versions ({e})", "upstream") from None
        with self._api_lock:
            self._api_range = (now, found)
        return found

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
        method = target = "-"
        head_only = False
        state = {}

        def decide_head(request, has_body):
            """Decided on the request line before any body is read."""
            nonlocal method, target, head_only
            method, target = request.method.decode("ascii"), request.target.decode("latin-1")
            head_only = method == "HEAD"
            state["decision"] = self.decide_head(method, target, has_body, state)
            return state["decision"].allowed and state["decision"].action == "create"

        try:
            got = read_request(client, self.settings.max_body, decide_head)
            if got is None:
                return  # connected and closed without a request (e.g. a port check)
            conn, request, body = got
            decision, resolved = state["decision"], state.get("resolved", "")
            target = state.get("target", target)
            if decision.status == 404:
                log(f"MISS  404 {method} {printable(target.split('?')[0])} rule=ownership reason=no such container")
                client.sendall(json_response(404, f"docker-proxy: No such container: {decision.container}", head_only))
                return
            if decision.allowed and decision.action == "create":
                decision = policy.check_create(body, self.config, self.image_user)
            if not decision.allowed:
                log(f"DENY  {decision.status} {method} {printable(target.split('?')[0])} "
                    f"rule={decision.rule} reason={printable(decision.reason, 300)}{resolved}")
                client.sendall(json_response(decision.status, decision.message(), head_only))
                return
            if not (decision.rule == "ping" and peer[0] in ("127.0.0.1", "::1") and not self.settings.log_local_pings):
                # (the image's healthcheck pings every 10 s: not logged unless PROXY_LOG_LOCAL_PINGS=1)
                log(f"ALLOW {method} {printable(target.split('?')[0])} rule={decision.rule}{resolved}")
            self.forward(client, conn, request, target, decision)
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

    def decide_head(self, method, target, has_body, state):
        """The decision on the request line; a container named by a name or id prefix is looked
        up and the request decided on (and later sent with) its full id. The engine's API range
        is only asked for when the path names a version."""
        api_range = self.api_range() if policy.VERSION_PREFIX.match(target) else None
        decision = policy.check_head(method, target, has_body, self.config, self.owned, api_range)
        if decision.resolve:
            ref = decision.container
            full_id = self.resolve_container(ref)
            if full_id is None:
                return policy.deny("ownership", "no such container", status=404, container=ref)
            target = policy.with_container_id(target, full_id)
            state["target"] = target
            state["resolved"] = f" ({printable(ref, 80)} = {full_id[:12]})"
            decision = policy.check_head(method, target, has_body, self.config, self.owned, api_range)
        return decision

    def forward(self, client, conn, request, target, decision):
        attach = decision.action == "attach"
        upgrade = attach and any(n == b"upgrade" for n, _ in request.headers)
        headers = [("Host", "docker")] + [
            (n, v) for n, v in request.headers.raw_items()  # as the client spelled them
            if n.lower() in FORWARD_HEADERS and not (decision.action == "create" and n.lower() == b"content-type")]
        if decision.action == "create":
            body = decision.body
            headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        else:
            body = b""
        headers += [("Connection", "Upgrade"), ("Upgrade", "tcp")] if upgrade else [("Connection", "close")]
        # What the client sent after its request: held back, and only ever passed on as the
        # stdin of an attach the engine switched to a raw stream.
        pending = bytearray(conn.trailing_data[0])

        up = Upstream(self.connect_upstream())
        try:
            try:
                up.send(h11.Request(method=request.method, target=target.encode("latin-1"), headers=headers),
                        *([h11.Data(data=body)] if body else []), h11.EndOfMessage())
                event = self.await_response(up, client, pending, attach)
            except (OSError, h11.ProtocolError) as e:
                raise HttpError(502, f"the Docker engine closed the connection or failed: {e}", "upstream") from None
            client.settimeout(None)
            status = event.status_code
            content_type = b"".join(v for n, v in event.headers if n == b"content-type")
            if attach and status == 101 and upgrade and up.conn.our_state is h11.SWITCHED_PROTOCOL:
                # the engine hijacked the connection: a raw stream both ways from here
                client.sendall(response_head(event, keep={b"connection", b"upgrade"}))
                relay(client, up.sock, up.conn.trailing_data[0], bytes(pending), both_ways=True)
                return
            if attach and status == 200 and not upgrade and content_type.startswith(RAW_STREAM_TYPES):
                # an attach without Upgrade: the engine hijacked it after a 200 with no framing
                client.sendall(response_head(event))
                relay(client, up.sock, up.conn.trailing_data[0], bytes(pending), both_ways=True)
                return
            # Anything else is an ordinary response: passed back, then both sides are closed,
            # whatever the client sent after its request (never forwarded).
            if decision.action == "create":
                data = up.body(self.settings.max_body)
                if status == 201:
                    self.remember(data)  # before the client can use the id
                client.sendall(response_head(event, extra=[] if any(n == b"content-length" for n, _ in event.headers)
                                             else [(b"Content-Length", str(len(data)).encode())]) + data)
                return
            client.sendall(response_head(event))
            self.stream_body(up, client)
            if decision.action == "remove" and status in (200, 204):
                self.owned.discard(decision.container)
        finally:
            up.close()

    def await_response(self, up, client, pending, attach):
        """The engine's response head (h11 Response, or the 101). Meanwhile the client is
        watched: when it goes away the request is abandoned (closing the upstream connection
        cancels it in the engine, e.g. a wait); what it sends is kept in `pending` for an attach
        (stdin, passed on only after a switch to a raw stream), otherwise dropped."""
        with selectors.DefaultSelector() as sel:
            sel.register(up.sock, selectors.EVENT_READ, "up")
            sel.register(client, selectors.EVENT_READ, "client")
            while True:
                event = up.next_event(block=False)
                if event is not h11.NEED_DATA:
                    if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                        continue  # 1xx other than the switch: not passed on
                    if isinstance(event, (h11.Response, h11.InformationalResponse)):
                        return event
                    raise HttpError(502, "the Docker engine closed the connection without answering", "upstream")
                for key, _ in sel.select():
                    if key.data == "up":
                        up.feed(up.sock.recv(65536))
                    else:
                        data = recv_or_eof(client)
                        if not data:
                            raise ClientGone
                        if attach and len(pending) < 1024 * 1024:
                            pending += data

    def stream_body(self, up, client):
        """The response body, as h11 de-frames it, to the client until its end; the client going
        away ends it (and the upstream request with it). What the client sends is dropped."""
        with selectors.DefaultSelector() as sel:
            sel.register(up.sock, selectors.EVENT_READ, "up")
            sel.register(client, selectors.EVENT_READ, "client")
            dropped = 0
            while True:
                event = up.next_event(block=False)
                if isinstance(event, h11.Data):
                    client.sendall(event.data)
                    continue
                if isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    return
                for key, _ in sel.select():
                    if key.data == "up":
                        up.feed(recv_or_eof(up.sock))
                    else:
                        data = recv_or_eof(client)
                        if not data:
                            return  # the client is gone: stop (closing upstream cancels it)
                        dropped += len(data)  # never forwarded: it was not checked
                        if dropped > 1024 * 1024:
                            return

    def remember(self, data):
        try:
            cid = json.loads(data)["Id"]
        except (ValueError, KeyError, TypeError) as e:
            log(f"ERROR create response without an Id ({type(e).__name__}): the container cannot be used")
            return
        if isinstance(cid, str) and policy.FULL_ID.fullmatch(cid):
            self.owned.add(cid)


def relay(client, up, pending_up, pending_client, both_ways):
    """Copy a raw stream (a hijacked attach) both ways until the engine closes; a client's
    half-close is passed on."""
    if pending_up:
        client.sendall(pending_up)
    if pending_client:
        up.sendall(pending_client)
    sel = selectors.DefaultSelector()
    try:
        sel.register(up, selectors.EVENT_READ, "up")
        sel.register(client, selectors.EVENT_READ, "client")
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
                        sel.unregister(client)
                        try:
                            up.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                    else:
                        up.sendall(data)
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
