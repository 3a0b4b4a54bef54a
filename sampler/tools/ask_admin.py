"""`tail-sampler explain TRACE_ID --admin HOST:PORT`: the decision lookup of a running daemon,
asked over its admin endpoint (GET /api/v1/decisions/{trace_id})."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from sampler.telemetry.endpoints import split_endpoint

TIMEOUT_SECONDS = 10.0
_ANY_ADDRESS = {"0.0.0.0", "::"}  # nosec B104 # names of the wildcard address, never listened on here


class AdminUnreachable(Exception):
    """The admin endpoint did not answer, or not with the lookup's JSON; the message says why."""


def admin_url(endpoint: str) -> str:
    """The base URL of an admin endpoint written as in the config (a wildcard host is asked on loopback)."""
    host, port = split_endpoint(endpoint)
    if host in _ANY_ADDRESS:
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def ask_decision(endpoint: str, trace_id: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of the lookup: 200 with the answer, 404 unknown, 400 malformed, 401 refused."""
    url = f"{admin_url(endpoint)}/api/v1/decisions/{urllib.parse.quote(trace_id, safe='')}"
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)  # nosec B310 # an http:// URL, built above
    try:
        opened = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)  # nosec B310 # the same http:// URL
        with opened as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminUnreachable(f"cannot reach the admin endpoint at {url}: {reason}") from None
    try:
        answer = json.loads(body)
    except ValueError:
        raise AdminUnreachable(f"{url} answered HTTP {status} without the lookup's JSON") from None
    if not isinstance(answer, dict):
        raise AdminUnreachable(f"{url} answered HTTP {status} with unexpected JSON")
    return status, answer
