"""Who a request comes from: the Hugging Face user who logged in, else the client's address as this server
sees it. One key (:func:`client_key`) for the fairness lanes, the upload bounds and the board's submitter.

Addresses. On a Space every request reaches the app through Hugging Face's proxy: the socket's peer is the
proxy, and the client's address is the entry the proxy *appended* to ``X-Forwarded-For``; whatever stands
left of it is what the client itself sent, so it is never read. ``SPACE_PROXY_HOPS`` says how many proxies
append an entry (default 1 on a Space, 0 elsewhere, where the socket's peer is the client). Uvicorn would
otherwise believe ``X-Forwarded-For`` from any loopback peer and hand the app whatever a local client wrote:
:func:`distrust_forwarded_headers` turns that off before the server starts.

Users. The login is Gradio's (``gr.LoginButton``, ``hf_oauth: true``): Hugging Face's OAuth answer is kept
in the session cookie, which Starlette signs; no header a client writes can name a user.

Addresses are never kept: :func:`address_key` is an HMAC-SHA256 keyed with ``SPACE_CLIENT_SECRET`` (else a
random key drawn once per process), so a stored key cannot be reversed by trying every IPv4 address.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from typing import Any

from space import settings

# Gradio's session entry for a Hugging Face login (gradio.oauth): {"userinfo": {"preferred_username"}, ...}.
OAUTH_SESSION_KEY = "oauth_info"


def _http_request(request: Any) -> Any:
    """The Starlette request behind a ``gr.Request`` (or the Starlette request itself)."""
    return getattr(request, "request", None) or request


def distrust_forwarded_headers() -> None:
    """Make uvicorn report the socket's peer as the client, whatever ``X-Forwarded-For`` says.

    Gradio builds uvicorn's config without ``forwarded_allow_ips``, so uvicorn reads this variable (its
    default trusts loopback peers, i.e. any local client). An empty list trusts no peer.
    """
    os.environ["FORWARDED_ALLOW_IPS"] = ""


def client_address(request: Any) -> str:
    """The client's address: the socket's peer, or on a Space the entry its proxy appended to
    ``X-Forwarded-For`` (``SPACE_PROXY_HOPS`` from the right); ``unknown`` when there is none."""
    http = _http_request(request)
    peer = getattr(getattr(http, "client", None), "host", None) or "unknown"
    hops = settings.proxy_hops()
    if hops <= 0 or http is None:
        return peer
    headers = getattr(http, "headers", {})
    if hasattr(headers, "getlist"):  # a header the client repeats is one list, as proxies join them
        values = headers.getlist("x-forwarded-for")
    else:
        values = [headers.get("x-forwarded-for") or ""]
    entries = [entry.strip() for value in values for entry in value.split(",") if entry.strip()]
    if len(entries) < hops:  # no proxy wrote here: a request from inside the Space's own network
        return peer
    try:
        return str(ipaddress.ip_address(entries[-hops]))
    except ValueError:
        return "unknown"


@functools.cache
def _secret() -> bytes:
    configured = settings.client_secret()
    return configured.encode() if configured else secrets.token_bytes(32)


def address_key(address: str) -> str:
    """What stands for an address wherever one is counted or stored: a keyed hash, never the address."""
    return hmac.new(_secret(), address.encode(), hashlib.sha256).hexdigest()[:24]


def hub_user(request: Any) -> str | None:
    """The Hugging Face user name of a request whose session holds a valid login, else None."""
    scope = getattr(_http_request(request), "scope", None)
    session = scope.get("session") if isinstance(scope, dict) else None
    info = session.get(OAUTH_SESSION_KEY) if isinstance(session, dict) else None
    if not isinstance(info, dict):
        return None
    expires_at = info.get("expires_at")
    if isinstance(expires_at, int | float) and expires_at < time.time():
        return None
    userinfo = info.get("userinfo")
    name = userinfo.get("preferred_username") if isinstance(userinfo, dict) else None
    return name if isinstance(name, str) and name else None


def client_key(request: Any) -> str:
    """Who the request is, in a form nobody can choose: ``hf:<user>`` once logged in, else
    ``ip:<address_key>``. The fairness lanes, the upload bounds and the board's submitter all use it."""
    if request is None:
        return "anonymous"
    user = hub_user(request)
    return f"hf:{user}" if user else f"ip:{address_key(client_address(request))}"


def login_required() -> bool:
    """Submissions need a Hugging Face login: always on a Space (anonymous visitors are refused)."""
    return settings.space_id() is not None


def login_offered() -> bool:
    """The page shows Gradio's login button: on a Space whose README asks for it (``hf_oauth: true``)."""
    return login_required() and settings.oauth_enabled()


def may_submit(request: Any) -> bool:
    """Whether the sender of ``request`` may submit to the board (and upload a submission's files)."""
    return not login_required() or hub_user(request) is not None


def submit_refusal() -> str:
    """What an anonymous visitor of a Space is told when submitting."""
    if login_offered():
        return "Log in with Hugging Face (the button above) to submit: submissions are made in your name."
    return "Submissions need a Hugging Face login, which this Space does not offer right now."
