"""The application smoke check against a small HTTP server.

Stand-in: the EnerLink NestJS application is not part of this repository, so a local
http.server answers /auth/login the way the guide shows (and the ways it can go wrong).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from wizard.core.smoke import SmokeSettings, login_check
from wizard.sandbox.servers import free_port


class _App(BaseHTTPRequestHandler):
    reply: ClassVar[tuple[int, Any]] = (200, {})
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        _App.seen.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
        status, body = _App.reply
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_args: Any) -> None:
        return


@pytest.fixture
def app() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _App.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def _settings(base: str) -> SmokeSettings:
    return SmokeSettings(base, "test@example.com", password="s3cret-pw")


def test_login_with_user_id_passes_and_keeps_no_secret(app: str) -> None:
    _App.reply = (200, {"access_token": "tok-123", "user": {"userId": "user_1_abc",
                                                              "email": "test@example.com"}})
    check = login_check(_settings(app))
    assert check.status == "pass", check.detail
    assert _App.seen == [{"path": "/auth/login",
                          "body": {"email": "test@example.com", "password": "s3cret-pw"}}]
    dumped = json.dumps(check.to_dict())
    assert "s3cret-pw" not in dumped
    assert "tok-123" not in dumped


def test_old_code_answering_prosumer_id_fails(app: str) -> None:
    _App.reply = (200, {"access_token": "t", "user": {"prosumerId": "prosumer_1_abc"}})
    check = login_check(_settings(app))
    assert check.status == "fail"
    assert "still runs the old code" in check.detail


def test_wrong_password_and_down_application_fail_clearly(app: str) -> None:
    _App.reply = (401, {"message": "Unauthorized"})
    check = login_check(_settings(app))
    assert check.status == "fail"
    assert "HTTP 401" in check.detail
    down = login_check(_settings(f"http://127.0.0.1:{free_port()}"))
    assert down.status == "fail"
    assert "is the application running?" in down.detail


def test_non_http_url_is_refused() -> None:
    check = login_check(_settings("file:///etc/passwd"))
    assert check.status == "fail"
    assert "not http(s)" in check.detail
