"""The optional application smoke check: log in through the API, expect `userId` back."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from wizard.core.verify import FAIL, PASS, Check

LOGIN_PATH = "auth/login"


@dataclass(frozen=True)
class SmokeSettings:
    base_url: str
    email: str
    password: str | None = field(default=None, repr=False, compare=False)
    timeout_s: float = 10.0


CHECK_ID = "smoke_login"


def _find_key(data: Any, key: str) -> Any:
    """The first value of `key` anywhere in a JSON document (the reply nests it in `user`)."""
    if isinstance(data, dict):
        if key in data:
            return data[key]
        for value in data.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    elif isinstance(data, list):
        for value in data:
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def login_check(settings: SmokeSettings) -> Check:
    """POST /auth/login as the guide does; pass when the reply carries userId, not prosumerId.

    Evidence keeps the URL, status and the reply's keys — never the password or the token.
    """
    import urllib.error  # http.client takes ~50 ms to import: not before the first login
    import urllib.request

    title = "Application login returns userId (POST /auth/login)"
    url = urljoin(settings.base_url.rstrip("/") + "/", LOGIN_PATH)
    if urlsplit(url).scheme not in ("http", "https"):
        return Check(CHECK_ID, title, FAIL,
                     f"base URL {settings.base_url!r} is not http(s); fix it in the profile")
    body = json.dumps({"email": settings.email, "password": settings.password or ""}).encode()
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 (scheme checked)
                                     headers={"Content-Type": "application/json"})
    evidence: dict[str, Any] = {"query": f"POST {url} as {settings.email}"}
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout_s) as reply:  # noqa: S310
            status, raw = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        evidence["result"] = {"status": exc.code}
        return Check(CHECK_ID, title, FAIL,
                     f"{url} answered HTTP {exc.code}: check the test account's email and "
                     f"password, and that the application was started", evidence)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(CHECK_ID, title, FAIL,
                     f"cannot reach {url}: {reason}; is the application running?", evidence)
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    try:
        data = json.loads(raw)
    except ValueError:
        evidence["result"] = {"status": status, "body": "not JSON"}
        return Check(CHECK_ID, title, FAIL, f"{url} did not answer JSON", evidence)
    user_id, prosumer_id = _find_key(data, "userId"), _find_key(data, "prosumerId")
    evidence["result"] = {"status": status, "ms": elapsed_ms,
                          "keys": sorted(data) if isinstance(data, dict) else [],
                          "userId": user_id, "prosumerId present": prosumer_id is not None}
    if user_id is None:
        detail = ("the reply has prosumerId but no userId: the application still runs the "
                  "old code" if prosumer_id is not None else "the reply has no userId")
        return Check(CHECK_ID, title, FAIL, detail, evidence)
    return Check(CHECK_ID, title, PASS, f"userId {user_id} in {elapsed_ms} ms", evidence)
