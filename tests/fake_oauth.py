"""A stand-in for Hugging Face's OpenID Connect provider, on a loopback port, for the Space's real login flow.

On a Space with ``hf_oauth: true`` Hugging Face sets ``OAUTH_CLIENT_ID``, ``OAUTH_CLIENT_SECRET``,
``OAUTH_SCOPES`` and ``OPENID_PROVIDER_URL``, and Gradio's login routes (authlib) talk to that provider:
discovery document, authorization redirect, code-for-token exchange, an RS256-signed ID token checked
against the provider's key set (issuer, audience, nonce, expiry). :class:`FakeHub` answers all of it for
one user, so ``/login/huggingface`` runs unchanged: the browser is sent here and straight back with a code,
as if the user had clicked "Allow". :meth:`FakeHub.space_env` is what Hugging Face would set.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "00000000-fsanet-space-test"
SCOPES = "openid profile"


class FakeHub:
    """``with FakeHub("user") as hub:`` serves the provider on ``hub.url`` until the block ends."""

    def __init__(self, username: str):
        self.username = username
        self.secret = secrets.token_urlsafe(24)
        self.key = RSAKey.generate_key(2048, parameters={"kid": "fake-hub"})
        self.codes: dict[str, str] = {}  # code -> nonce
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def space_env(self) -> dict[str, str]:
        """The variables Hugging Face sets on a Space whose README says ``hf_oauth: true``."""
        return {
            "OAUTH_CLIENT_ID": CLIENT_ID,
            "OAUTH_CLIENT_SECRET": self.secret,
            "OAUTH_SCOPES": SCOPES,
            "OPENID_PROVIDER_URL": self.url,
        }

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": "1234567890",
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 3600,
            "nonce": nonce,
            "name": self.username.title(),
            "preferred_username": self.username,
            "profile": f"https://huggingface.co/{self.username}",
            "picture": "https://huggingface.co/avatars/none.svg",
        }
        return jwt.encode({"alg": "RS256", "kid": "fake-hub"}, claims, self.key)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def _json(self, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/.well-known/openid-configuration":
                    self._json(
                        {
                            "issuer": hub.url,
                            "authorization_endpoint": f"{hub.url}/oauth/authorize",
                            "token_endpoint": f"{hub.url}/oauth/token",
                            "jwks_uri": f"{hub.url}/oauth/jwks",
                            "id_token_signing_alg_values_supported": ["RS256"],
                        }
                    )
                elif url.path == "/oauth/jwks":
                    self._json({"keys": [hub.key.as_dict(private=False)]})
                elif url.path == "/oauth/authorize" and query.get("client_id") == CLIENT_ID:
                    code = secrets.token_urlsafe(16)
                    hub.codes[code] = query.get("nonce", "")
                    back = urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
                    redirect = query["redirect_uri"]
                    self.send_response(302)
                    self.send_header("Location", f"{redirect}{'&' if '?' in redirect else '?'}{back}")
                    self.end_headers()
                else:
                    self.send_error(404)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                nonce = hub.codes.pop(form.get("code", ""), None)
                credentials = base64.b64encode(f"{CLIENT_ID}:{hub.secret}".encode()).decode()
                authorized = self.headers.get("Authorization") == f"Basic {credentials}"
                if self.path != "/oauth/token" or nonce is None or not authorized:
                    self.send_error(400)
                    return
                self._json(
                    {
                        "access_token": secrets.token_urlsafe(24),
                        "token_type": "Bearer",
                        "expires_in": 3600,
                        "scope": SCOPES,
                        "id_token": hub._id_token(nonce),
                    }
                )

        return Handler
