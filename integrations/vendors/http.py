"""Outbound HTTP POSTs to other systems' URLs (webhook receivers), with a timeout and no redirects.

Uses `requests` (already installed for the WeChat SDKs) with one session per thread, so a worker
keeps its connections to a receiver alive between messages. Imports no app.
"""

import threading
import time
from dataclasses import dataclass

import requests

USER_AGENT = "o2o-webhooks/1"
EXCERPT_BYTES = 1000
_local = threading.local()


@dataclass(frozen=True)
class PostResult:
    """How a POST ended: the status (None if no answer came), an excerpt of the answer, an error text."""

    status_code: int | None
    excerpt: str
    error: str
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.trust_env = False  # no proxy or netrc from the worker's environment
    return session


def post_bytes(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> PostResult:
    """POST `body` as JSON; never raises for network trouble (the result says what went wrong).

    Redirects are not followed: a receiver that moved must be changed by HQ, and a redirect must
    not carry a signed message somewhere nobody chose.
    """
    started = time.perf_counter()
    try:
        with _session().post(
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        ) as response:
            raw = response.raw.read(EXCERPT_BYTES, decode_content=True) or b""
            status = response.status_code
        error = "" if 200 <= status < 300 else f"HTTP {status}"
        excerpt = raw.decode("utf-8", errors="replace")
    except requests.RequestException as exc:
        status, excerpt, error = None, "", f"{type(exc).__name__}: {exc}"[:255]
    return PostResult(
        status_code=status,
        excerpt=excerpt,
        error=error,
        duration_ms=int((time.perf_counter() - started) * 1000),
    )
