"""What a receiver checks before it reads a request: TLS (optionally mutual) and a token in a header.

Both read their files at start and again when the files change: a change is
looked for at most once per `reload_interval`, on the next connection or
request, so a rotated certificate or token file takes effect without a restart.
A file that cannot be loaded (half written, missing, a key that does not fit
the certificate) leaves the previous credentials in use, logged and counted.
Token values and header values are secrets: nothing here logs or echoes them.
"""

from __future__ import annotations

import hmac
import logging
import ssl
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sampler.clock import Clock, monotonic
from sampler.config.receivers import ReceiverAuthConfig, ServerTlsConfig
from sampler.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.typedefs import Handler, Middleware

log = logging.getLogger(__name__)

PROTOCOL_NAMES = {"grpc": "OTLP/gRPC", "http": "OTLP/HTTP"}


def _name(protocol: str) -> str:
    return PROTOCOL_NAMES.get(protocol, protocol)


class CredentialError(OSError):
    """Credentials that cannot be loaded; the message names the file, never a secret."""


def _read(path: str, what: str, protocol: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CredentialError(f"{_name(protocol)}: cannot read {what} {path}: {exc.strerror}") from None


class _Reloading:
    """Rate-limits the look for changed files to once per interval, across threads."""

    def __init__(self, interval: float, clock: Clock) -> None:
        self._interval = interval
        self._clock = clock
        self._next_check = clock() + interval
        self.lock = threading.Lock()

    def due(self) -> bool:
        """True at most once per interval; never when the interval is 0."""
        if not self._interval:
            return False
        now = self._clock()
        if now < self._next_check:
            return False
        self._next_check = now + self._interval
        return True


# --- TLS ---------------------------------------------------------------------


@dataclass(frozen=True)
class TlsMaterial:
    """One consistent load of the files: their bytes (for gRPC) and a server context (for aiohttp)."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None
    context: ssl.SSLContext
    generation: int


class ServerTls:
    """A receiver's certificate, key and client CA, reloaded when the files change."""

    def __init__(self, config: ServerTlsConfig, protocol: str, metrics: Metrics, clock: Clock = monotonic) -> None:
        self._config = config
        self._protocol = protocol
        self._reloads = metrics.credential_reloads
        self._reloading = _Reloading(config.reload_interval, clock)
        self.material = self._load(generation=0)

    @property
    def client_auth(self) -> bool:
        return self._config.client_ca_file is not None

    def _read_all(self) -> tuple[bytes, bytes, bytes | None]:
        config = self._config
        return (
            _read(config.cert_file, "tls.cert_file", self._protocol),
            _read(config.key_file, "tls.key_file", self._protocol),
            _read(config.client_ca_file, "tls.client_ca_file", self._protocol) if config.client_ca_file else None,
        )

    def _load(self, generation: int) -> TlsMaterial:
        config = self._config
        before = self._read_all()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(config.cert_file, config.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise CredentialError(
                f"{_name(self._protocol)}: cannot load tls.cert_file {config.cert_file} "
                f"with tls.key_file {config.key_file}: {getattr(exc, 'reason', None) or exc}"
            ) from None
        if config.client_ca_file:
            try:
                context.load_verify_locations(cafile=config.client_ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise CredentialError(
                    f"{_name(self._protocol)}: cannot load tls.client_ca_file {config.client_ca_file}: "
                    f"{getattr(exc, 'reason', None) or exc}"
                ) from None
            context.verify_mode = ssl.CERT_REQUIRED
        # The context was built from the paths: make sure they held the bytes read before it, not a newer,
        # half-written version.
        if self._read_all() != before:
            raise CredentialError(f"{_name(self._protocol)}: the TLS files changed while being loaded")
        return TlsMaterial(before[0], before[1], before[2], context, generation)

    def refresh(self) -> TlsMaterial:
        """The current material, reloaded first if the interval has passed and the files changed."""
        with self._reloading.lock:
            if not self._reloading.due():
                return self.material
            try:
                if self._read_all() == (
                    self.material.cert_chain,
                    self.material.private_key,
                    self.material.client_ca,
                ):
                    return self.material
                material = self._load(self.material.generation + 1)
            except CredentialError as exc:
                self._reloads.labels(self._protocol, "tls", "failure").inc()
                log.error("TLS reload failed; the previous certificate stays in use: %s", exc)
                return self.material
            self.material = material
            self._reloads.labels(self._protocol, "tls", "success").inc()
            log.info("%s: reloaded the TLS certificate from %s", _name(self._protocol), self._config.cert_file)
            return material

    def server_context(self) -> ssl.SSLContext:
        """An SSL context for a listening socket whose every handshake uses the latest certificate."""
        listening = self.material.context

        def on_client_hello(connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
            # Called on every handshake (with or without SNI): switching the connection to the current
            # context switches both the certificate it presents and the CAs that verify the client.
            connection.context = self.refresh().context

        listening.sni_callback = on_client_hello
        return listening


# --- tokens ------------------------------------------------------------------


class TokenAuth:
    """Checks the configured header against the accepted tokens, in constant time."""

    def __init__(self, config: ReceiverAuthConfig, protocol: str, metrics: Metrics, clock: Clock = monotonic) -> None:
        self._config = config
        self._protocol = protocol
        self.header = config.header
        self.scheme = config.scheme
        self._scheme_lower = config.scheme.lower()
        self._inline = [token.get_secret_value().strip().encode() for token in config.bearer_tokens]
        self._failures = {
            reason: metrics.auth_failures.labels(protocol, reason) for reason in ("missing", "malformed", "invalid")
        }
        self._reloads = metrics.credential_reloads
        self._reloading = _Reloading(config.reload_interval if config.bearer_token_file else 0.0, clock)
        self._file_bytes = b""
        self._tokens = self._inline
        if config.bearer_token_file:
            self._file_bytes = _read(config.bearer_token_file, "auth.bearer_token_file", protocol)
            self._tokens = self._inline + self._parse_file(self._file_bytes)
        if not self._tokens:
            raise CredentialError(
                f"{_name(protocol)}: auth.bearer_token_file {config.bearer_token_file} holds no token"
            )

    @staticmethod
    def _parse_file(data: bytes) -> list[bytes]:
        return [line.strip() for line in data.splitlines() if line.strip()]

    def _refresh(self) -> None:
        path = self._config.bearer_token_file
        if path is None or not self._reloading.due():
            return
        try:
            data = _read(path, "auth.bearer_token_file", self._protocol)
            if data == self._file_bytes:
                return
            tokens = self._inline + self._parse_file(data)
            if not tokens:
                raise CredentialError(f"{_name(self._protocol)}: auth.bearer_token_file {path} holds no token")
        except CredentialError as exc:
            self._reloads.labels(self._protocol, "tokens", "failure").inc()
            log.error("token reload failed; the previous tokens stay in use: %s", exc)
            return
        self._file_bytes = data
        self._tokens = tokens
        self._reloads.labels(self._protocol, "tokens", "success").inc()
        log.info("%s: reloaded %d token(s) from %s", _name(self._protocol), len(tokens), path)

    def check(self, value: str | None) -> str | None:
        """None when `value` (the header's value, None if absent) carries an accepted token;
        otherwise a message for the client, which never repeats what it sent."""
        self._refresh()
        header = self.header
        if value is None:
            self._failures["missing"].inc()
            expected = f"{self.scheme} <token>" if self.scheme else "<token>"
            return f"authentication required: send the header '{header}: {expected}'"
        presented = value.strip()
        if self._scheme_lower:
            scheme, _, presented = presented.partition(" ")
            if scheme.lower() != self._scheme_lower:
                self._failures["malformed"].inc()
                return f"the {header} header must be '{self.scheme} <token>'"
            presented = presented.strip()
        candidate = presented.encode("utf-8", "surrogateescape")
        accepted = False
        for token in self._tokens:
            # Every token is compared, each in constant time, so timing says nothing about which matched.
            accepted |= hmac.compare_digest(token, candidate)
        if not accepted:
            self._failures["invalid"].inc()
            return f"the token in the {header} header is not valid"
        return None


def token_middleware(
    auth: TokenAuth,
    refuse: Callable[[web.Request, str], web.Response],
    open_paths: Collection[str] = (),
) -> Middleware:
    """An aiohttp middleware that lets a request through only with an accepted token (paths in
    `open_paths` need none); `refuse` makes the 401 answer, in the server's own format."""
    from aiohttp import web  # here: `check` and the CLI, which import this module, need no aiohttp

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Before the body is read: an unauthenticated client costs no decoding.
        if request.path in open_paths:
            return await handler(request)
        refusal = auth.check(request.headers.get(auth.header))
        if refusal is None:
            return await handler(request)
        reply = refuse(request, refusal)
        if auth.scheme:
            reply.headers["WWW-Authenticate"] = auth.scheme
        return reply

    return authenticate


def describe_security(tls: ServerTlsConfig | None, auth: ReceiverAuthConfig | None) -> str:
    """How a receiver is protected, in words that name files but no secret."""
    parts = []
    if tls is None:
        parts.append("plaintext")
    else:
        parts.append(f"TLS ({tls.cert_file})")
        if tls.client_ca_file:
            parts.append(f"client certificates from {tls.client_ca_file} required")
    if auth is not None:
        sources = []
        if auth.bearer_tokens:
            sources.append(f"{len(auth.bearer_tokens)} inline")
        if auth.bearer_token_file:
            sources.append(f"from {auth.bearer_token_file}")
        parts.append(f"token in the {auth.header} header ({', '.join(sources)})")
    return ", ".join(parts)


def admin_middlewares(auth: ReceiverAuthConfig | None, metrics: Metrics) -> list[Middleware]:
    """The admin endpoint's token check (admin.auth), if any: every path but the probes' and the
    console page's needs the token; a refusal is a JSON 401."""
    if auth is None:
        return []
    from aiohttp import web  # here, as in token_middleware

    from sampler.telemetry.admin import PROBE_PATHS
    from sampler.telemetry.console import PAGE_PATHS

    def refuse(request: web.Request, message: str) -> web.Response:
        return web.json_response({"error": message}, status=401)

    return [token_middleware(TokenAuth(auth, "admin", metrics), refuse, PROBE_PATHS | PAGE_PATHS)]
