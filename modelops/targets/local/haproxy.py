"""HAProxy in front of the local replicas: the generated configuration and a client for its runtime API.

Layout: one backend per colour (``be_blue``, ``be_green``), each with a fixed set of server slots (a
``server-template``) that the runtime API fills in as replicas start — no reload is ever needed, so no client
connection is ever dropped by a configuration change. The live frontend sends each request to green with
probability ``green_weight`` % (a map entry the runtime API changes), else to blue. Each colour also has its own
frontend, so a candidate pool is reachable on its own URL while live traffic stays untouched.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bento.prediction_log import SYNTHETIC_HEADER
from modelops.errors import DeploymentError
from modelops.tools import require

SLOTS = 32  # server slots per colour: the most replicas a pool can have (modelops:deploy.replicas <= 32)
COLOURS = ("blue", "green")
INSTALL_HINT = (
    "haproxy is not installed: run `make setup` (it installs it with apt-get or brew), "
    "or install HAProxy >= 2.4 yourself (Debian/Ubuntu: sudo apt-get install haproxy; macOS: brew install haproxy)"
)


# HAProxy refuses a Unix socket path longer than 97 bytes (sun_path's 108 less the suffix it adds while binding).
MAX_SOCKET_PATH = 97


def binary() -> str:
    return require("haproxy", INSTALL_HINT)


def socket_path_for(state_dir: Path, name: str = "haproxy.sock") -> Path:
    """Where the runtime API's socket lives: in the state dir, unless that path is too long for a Unix socket (a
    deeply nested state_dir) — then in a private directory of this user under the system temp dir, named after the
    state dir, so each deployment still has its own."""
    path = state_dir / name
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:16]
    for temp in (Path(tempfile.gettempdir()), Path("/tmp")):
        private = temp / f"modelops-{os.getuid()}"
        if len(str(private / f"{digest}.sock")) <= MAX_SOCKET_PATH:
            break
    private.mkdir(mode=0o700, exist_ok=True)
    info = private.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise DeploymentError(
            f"{private} (for HAProxy's socket: {path} is longer than a Unix socket allows) belongs to another user "
            f"or is open to others: remove it, or choose a shorter modelops:local.state_dir"
        )
    return private / f"{digest}.sock"


def slot_name(colour: str, index: int) -> str:
    """Server names: b1..b32 in be_blue, g1..g32 in be_green."""
    return f"{colour[0]}{index}"


@dataclass(frozen=True)
class Layout:
    lb_port: int
    admin_port: int
    pool_ports: dict[str, int]  # colour -> port of that colour's own frontend
    socket_path: Path
    map_path: Path
    max_body_bytes: int
    request_timeout_s: float
    rate_limit: RateLimit | None = None  # per-source limit; None: no limit
    # The deployment's synthetic-traffic secret (modelops/monitor/synthetic.py): X-Modelops-Synthetic reaches a
    # replica only when it carries it. None: the header is always stripped.
    synthetic_secret: str | None = None


@dataclass(frozen=True)
class RateLimit:
    requests: int  # per source address and window
    window_s: int


# HAProxy keeps the request's headers and body in one buffer, and keeps tune.maxrewrite (1024 by default) of it free
# for header rewrites; headers are at most this large here (HAProxy refuses larger ones with 400 anyway).
HEADER_ROOM = 16 * 1024 + 1024
DEFAULT_BUFSIZE = 16 * 1024  # HAProxy's own default


def bufsize(max_body_bytes: int) -> int:
    """tune.bufsize that holds the headers and the largest accepted body.

    L7 retries (retry-on …) resend the request from HAProxy's buffer: a body that does not fit was partly forwarded
    already and cannot be resent, so a replica dying under a large request would fail it. Sized from the body limit,
    every accepted request can be retried. The cost is memory per request in flight (two buffers each, allocated
    only while a request is being handled): about 2 x 1 MiB per concurrent request at the default 1 MiB limit.
    """
    return max(DEFAULT_BUFSIZE, max_body_bytes + HEADER_ROOM)


def strip_synthetic_marker(secret: str | None) -> str:
    """The frontend rule that removes X-Modelops-Synthetic unless it carries the deployment's secret.

    The replica checks the secret itself (bento/prediction_log.py); this is defence in depth: a forged marker never
    reaches a replica, so no replica started without the secret can be fooled by it."""
    if secret is None:
        return f"    http-request del-header {SYNTHETIC_HEADER}"
    if not secret or not set(secret) <= _SECRET_CHARS:
        raise ValueError("the synthetic secret must be URL-safe base64 (letters, digits, - and _)")
    return f"    http-request del-header {SYNTHETIC_HEADER} unless {{ req.hdr({SYNTHETIC_HEADER}) -m str -- {secret} }}"


_SECRET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def render_config(layout: Layout) -> str:
    limit = layout.max_body_bytes
    too_large = f'{{"error": "request body is larger than the limit of {limit} bytes: send fewer rows", "detail": []}}'
    pickle = (
        '{"error": "unsupported content type application/vnd.bentoml+pickle (BentoML-internal, never accepted from'
        ' clients): send the body as application/json", "detail": []}'
    )
    rate = layout.rate_limit
    frontends = [("fe_live", layout.lb_port, None)] + [
        (f"fe_{colour}", layout.pool_ports[colour], colour) for colour in COLOURS
    ]
    out = [
        "# Generated by modelops (modelops/targets/local/haproxy.py). Run-time changes go through the runtime API.",
        "global",
        f"    stats socket {layout.socket_path} mode 600 level admin",
        "    maxconn 4096",
        "    nbthread 1",
        f"    tune.bufsize {bufsize(limit)}",
        "",
        "defaults",
        "    mode http",
        "    option http-keep-alive",
        "    timeout connect 1s",
        "    timeout client 30s",
        f"    timeout server {int(layout.request_timeout_s * 1000)}ms",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 30s",
        # A replica that dies takes in-flight and new requests with it: retry those on another replica.
        # Predictions are idempotent, so resending a request whose response never started is safe.
        "    retries 3",
        "    retry-on conn-failure empty-response junk-response response-timeout",
        # L7 retries resend the request from HAProxy's buffer: it must hold the whole body (they are small).
        "    option http-buffer-request",
        # Redispatch on every retry (the default only redispatches on the last one).
        "    option redispatch 1",
        "",
    ]
    for name, port, colour in frontends:
        out += [
            f"frontend {name}",
            f"    bind 127.0.0.1:{port}",
            "    http-request set-var(txn.too_large) req.hdr_val(content-length),sub(" + str(limit) + ")",
            f"    http-request return status 413 content-type application/json string '{too_large}'"
            " if { var(txn.too_large) -m int gt 0 }",
            # BentoML deserialises this type with pickle (arbitrary code on load) between its own services: refuse it
            # here for any bento, before a replica parses it. (The reference service's guard refuses it too.)
            f"    http-request return status 415 content-type application/json string '{pickle}'"
            " if { req.hdr(content-type) -m beg -i application/vnd.bentoml+pickle }",
            strip_synthetic_marker(layout.synthetic_secret),
        ]
        if rate is not None:
            limited = (
                f'{{"error": "more than {rate.requests} requests in {rate.window_s} s from your address: retry after'
                f' {rate.window_s} s, or ask for a higher limit (modelops:rate_limit)", "detail": []}}'
            )
            out += [
                f"    stick-table type ip size 100k expire {rate.window_s}s store http_req_rate({rate.window_s}s)",
                "    http-request track-sc0 src",
                f"    http-request return status 429 content-type application/json string '{limited}'"
                f" hdr Retry-After {rate.window_s} if {{ sc_http_req_rate(0) gt {rate.requests} }}",
            ]
        if colour is None:
            out += [
                f"    http-request set-var(txn.green_weight) str(green_weight),map_str_int({layout.map_path},0)",
                "    use_backend be_green if { rand(100),sub(txn.green_weight) -m int lt 0 }",
                "    default_backend be_blue",
            ]
        else:
            out.append(f"    default_backend be_{colour}")
        out.append("")
    for colour in COLOURS:
        prefix = slot_name(colour, 1)[0]
        out += [
            f"backend be_{colour}",
            "    balance leastconn",
            "    option httpchk GET /readyz",
            "    http-check expect status 200",
            # Mark a replica down after 2 failed checks 1 s apart; errors on live traffic trigger fast checks.
            "    default-server check inter 1s fastinter 250ms fall 2 rise 2 observe layer4 error-limit 1"
            " on-error fastinter",
            f"    server-template {prefix} 1-{SLOTS} 127.0.0.1:1 disabled",
            "",
        ]
    out += [
        "frontend admin",
        f"    bind 127.0.0.1:{layout.admin_port}",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 5s",
        "",
    ]
    return "\n".join(out)


def render_map(green_weight: int) -> str:
    return f"green_weight {green_weight}\n"


class RuntimeAPI:
    """HAProxy's runtime API over its UNIX socket (one command per connection)."""

    def __init__(self, socket_path: Path, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.socket_path))
            except OSError as exc:
                raise DeploymentError(
                    f"cannot reach HAProxy's runtime API at {self.socket_path} ({exc.strerror}): "
                    "is the deployment up? (`modelops status`)"
                ) from None
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        reply = b"".join(chunks).decode(errors="replace").strip()
        lowered = reply.lower()
        if lowered.startswith(("unknown", "no such", "require")) or "invalid" in lowered[:80]:
            raise DeploymentError(f"HAProxy refused {line!r}: {reply}")
        return reply

    def ready(self) -> bool:
        try:
            self.command("show info")
        except DeploymentError:
            return False
        return True

    def set_server(self, colour: str, index: int, port: int) -> None:
        server = f"be_{colour}/{slot_name(colour, index)}"
        self.command(f"set server {server} addr 127.0.0.1 port {port}")
        self.command(f"set server {server} state ready")
        self.command(f"enable health {server}")

    def server_state(self, colour: str, index: int, state: str) -> None:
        """state: ready | drain | maint."""
        self.command(f"set server be_{colour}/{slot_name(colour, index)} state {state}")

    def set_green_weight(self, map_path: Path, weight: int) -> None:
        self.command(f"set map {map_path} green_weight {weight}")

    def green_weight(self, map_path: Path) -> int | None:
        """The weight HAProxy applies right now (``show map``), None if the entry is missing."""
        for line in self.command(f"show map {map_path}").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "green_weight":
                return int(parts[2])
        return None

    def stats(self) -> list[dict[str, str]]:
        """``show stat`` as rows (pxname, svname, status, scur, …)."""
        text = self.command("show stat")
        return list(csv.DictReader(io.StringIO(text.lstrip("# "))))

    def servers(self, colour: str) -> dict[str, dict[str, str]]:
        return {row["svname"]: row for row in self.stats() if row["pxname"] == f"be_{colour}"}
