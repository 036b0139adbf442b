"""The application smoke check against a small HTTP server (conftest's login_app: a
stand-in, the EnerLink NestJS application is not part of this repository)."""

from __future__ import annotations

import json
from typing import Any

from wizard.core.smoke import SmokeSettings, login_check
from wizard.sandbox.servers import free_port


def _settings(base: str) -> SmokeSettings:
    return SmokeSettings(base, "test@example.com", password="s3cret-pw")


def test_login_with_user_id_passes_and_keeps_no_secret(login_app: Any) -> None:
    login_app.reply = (200, {"access_token": "tok-123", "user": {"userId": "user_1_abc",
                                                              "email": "test@example.com"}})
    check = login_check(_settings(login_app.url))
    assert check.status == "pass", check.detail
    assert login_app.seen == [{"path": "/auth/login",
                          "body": {"email": "test@example.com", "password": "s3cret-pw"}}]
    dumped = json.dumps(check.to_dict())
    assert "s3cret-pw" not in dumped
    assert "tok-123" not in dumped


def test_old_code_answering_prosumer_id_fails(login_app: Any) -> None:
    login_app.reply = (200, {"access_token": "t", "user": {"prosumerId": "prosumer_1_abc"}})
    check = login_check(_settings(login_app.url))
    assert check.status == "fail"
    assert "still runs the old code" in check.detail


def test_wrong_password_and_down_application_fail_clearly(login_app: Any) -> None:
    login_app.reply = (401, {"message": "Unauthorized"})
    check = login_check(_settings(login_app.url))
    assert check.status == "fail"
    assert "HTTP 401" in check.detail
    down = login_check(_settings(f"http://127.0.0.1:{free_port()}"))
    assert down.status == "fail"
    assert "is the application running?" in down.detail


def test_non_http_url_is_refused() -> None:
    check = login_check(_settings("file:///etc/passwd"))
    assert check.status == "fail"
    assert "not http(s)" in check.detail
