#!/usr/bin/env python3
"""Minimal Docker registry token server for the udocker-rs test fixtures.

Implements the "Docker Registry v2 token authentication" flow well enough for
the CNCF distribution server (2.8) configured with `auth.token`:

  GET  /token?service=S&scope=repository:NAME:pull,push[&scope=...]
  POST /token   (OAuth2 form: grant_type=password, username, password,
                 service, scope) -- some clients use it, so it is accepted too.

Policy (deliberately tiny, it exists to exercise client code paths):
  * no Authorization header   -> "pull" on every repository except private/*
  * Basic with the configured user/password -> requested actions on anything
  * any other credentials     -> HTTP 401

Tokens are RS256 JWTs whose header carries the signing certificate in `x5c`;
distribution verifies that certificate against its `rootcertbundle`.
Signing shells out to the `openssl` CLI so only the standard library is needed.

Python standard library only.  Written from the public token spec, see
https://distribution.github.io/distribution/spec/auth/jwt/
"""

import argparse
import base64
import json
import ssl
import subprocess
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN_LIFETIME = 300
ALL_ACTIONS = ("pull", "push", "delete")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def cert_der_b64(pem_path: str) -> str:
    """The x5c header wants standard (not URL-safe) base64 of the DER cert."""
    with open(pem_path, "r", encoding="ascii") as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return base64.b64encode(der).decode("ascii")


class Signer:
    def __init__(self, key_path: str, cert_path: str):
        self.key_path = key_path
        self.x5c = [cert_der_b64(cert_path)]

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        # RS256 == RSASSA-PKCS1-v1_5 over SHA-256, which is exactly what
        # `openssl dgst -sha256 -sign` produces.
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", self.key_path],
            input=signing_input.encode("ascii"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=True,
        ).stdout
        return signing_input + "." + b64url(sig)


def parse_scope(scope: str):
    """'repository:name:pull,push' -> ('repository', 'name', ['pull','push']).

    Repository names never contain ':' but may be prefixed with a host:port
    in odd clients, so split the type off the left and the actions off the
    right."""
    try:
        typ, rest = scope.split(":", 1)
        name, actions = rest.rsplit(":", 1)
    except ValueError:
        return None
    acts = [a for a in actions.split(",") if a]
    return typ, name, acts


def allowed_actions(typ: str, name: str, requested, authenticated: bool):
    if authenticated:
        if typ == "registry":  # registry:catalog:*
            return list(requested)
        if "*" in requested:
            return list(ALL_ACTIONS)
        return [a for a in requested if a in ALL_ACTIONS]
    if typ != "repository" or name.startswith("private/"):
        return []
    return [a for a in requested if a == "pull"]


class Handler(BaseHTTPRequestHandler):
    server_version = "udocker-test-token/1"
    protocol_version = "HTTP/1.1"

    # ---- helpers -------------------------------------------------------
    def log_message(self, fmt, *args):
        sys.stderr.write(
            "%s %s - %s\n"
            % (time.strftime("%Y-%m-%dT%H:%M:%S"), self.address_string(), fmt % args)
        )

    def send_json(self, code: int, obj, extra_headers=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def deny(self, msg: str):
        self.send_json(
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": msg}]},
            {"WWW-Authenticate": 'Basic realm="udocker-test-token"'},
        )

    def check_basic(self):
        """Returns (ok, authenticated, subject)."""
        auth = self.headers.get("Authorization")
        if not auth:
            return True, False, ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic":
            return False, False, ""
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except Exception:
            return False, False, ""
        return self.check_password(user, password)

    def check_password(self, user, password):
        cfg = self.server.cfg
        if user == cfg.user and password == cfg.password:
            return True, True, user
        return False, False, ""

    # ---- endpoints -----------------------------------------------------
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/healthz":
            self.send_json(200, {"ok": True})
            return
        if url.path != "/token":
            self.send_json(404, {"error": "not found"})
            return
        params = parse_qs(url.query)
        ok, authed, subject = self.check_basic()
        if not ok:
            self.deny("invalid credentials")
            return
        self.issue(params, authed, subject)

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path != "/token":
            self.send_json(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        params = parse_qs(self.rfile.read(length).decode())
        grant = (params.get("grant_type") or [""])[0]
        if grant == "password":
            ok, authed, subject = self.check_password(
                (params.get("username") or [""])[0], (params.get("password") or [""])[0]
            )
        else:
            ok, authed, subject = self.check_basic()
        if not ok:
            self.deny("invalid credentials")
            return
        self.issue(params, authed, subject)

    def issue(self, params, authed: bool, subject: str):
        cfg = self.server.cfg
        service = (params.get("service") or [cfg.service])[0]
        if service != cfg.service:
            self.send_json(400, {"error": "unknown service %r" % service})
            return
        access = []
        # `scope` may repeat; each one may also hold several space-separated
        # scopes (OAuth2 style).
        for raw in params.get("scope", []):
            for scope in raw.split():
                parsed = parse_scope(scope)
                if not parsed:
                    continue
                typ, name, requested = parsed
                acts = allowed_actions(typ, name, requested, authed)
                # Distribution treats a missing entry as "denied"; listing an
                # entry with no actions is equally harmless and helps
                # debugging.
                access.append({"type": typ, "name": name, "actions": acts})
        now = int(time.time())
        claims = {
            "iss": cfg.issuer,
            "sub": subject,
            "aud": service,
            "exp": now + TOKEN_LIFETIME,
            "nbf": now - 10,  # tolerate small clock skew
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        try:
            token = self.server.signer.sign(claims)
        except subprocess.CalledProcessError as e:
            self.send_json(500, {"error": "signing failed: %s" % e.stderr.decode(errors="replace")})
            return
        self.send_json(
            200,
            {
                "token": token,
                "access_token": token,
                "expires_in": TOKEN_LIFETIME,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            },
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5003)
    ap.add_argument("--key", required=True, help="PEM private key (RSA)")
    ap.add_argument("--cert", required=True, help="PEM certificate for the key")
    ap.add_argument("--issuer", default="udocker-test-issuer")
    ap.add_argument("--service", default="udocker-test-registry")
    ap.add_argument("--user", default="testuser")
    ap.add_argument("--password", default="testpass")
    cfg = ap.parse_args()

    signer = Signer(cfg.key, cfg.cert)
    signer.sign({"selftest": True})  # fail at startup, not on first request

    ThreadingHTTPServer.allow_reuse_address = True
    httpd = ThreadingHTTPServer((cfg.addr, cfg.port), Handler)
    httpd.daemon_threads = True
    httpd.cfg = cfg
    httpd.signer = signer
    sys.stderr.write("token server listening on %s:%d\n" % (cfg.addr, cfg.port))
    sys.stderr.flush()
    httpd.serve_forever()


if __name__ == "__main__":
    main()
