"""A client for OpenAI-compatible chat completion servers (OpenAI and other hosted models, llama.cpp's server).

Rate limits and server errors (429, 5xx), timeouts and broken connections are retried with exponential
backoff and full jitter; a Retry-After header is honoured and pauses every thread, not just the one that was
told, since a rate limit applies to the whole key. Authentication and not-found errors stop the run at once:
every further request would fail the same way.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from dataclasses import dataclass, field

import httpx

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}
FATAL_STATUS = {401, 403, 404}
MAX_RETRY_AFTER_S = 600.0


class FatalAPIError(RuntimeError):
    """The server refuses every request (wrong key, wrong URL or model): the run stops."""


class RequestFailed(RuntimeError):
    """One request failed for good (retries exhausted, or the server rejected it)."""


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, status: str) -> None:
        with self.lock:
            self.requests += 1
            self.by_status[status] = self.by_status.get(status, 0) + 1

    def retried(self) -> None:
        with self.lock:
            self.retries += 1


class ChatClient:
    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, timeout_s: float = 120.0,
                 max_retries: int = 6, backoff_initial_s: float = 1.0, backoff_max_s: float = 60.0,
                 max_connections: int = 8, params: dict | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/", headers=headers,
                                  timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
                                  limits=httpx.Limits(max_connections=max_connections))
        self.model = model
        self.max_retries = max_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.params = params or {}
        self.stats = ClientStats()
        self._paused_until = 0.0
        self._pause_lock = threading.Lock()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Make waiting requests give up (a retry wait ends at once)."""
        self._cancel.set()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def complete(self, messages: list[dict]) -> Completion:
        body = {"model": self.model, "messages": messages, **self.params}
        retries = 0
        while True:
            self._wait_for_pause()
            if self._cancel.is_set():
                raise RequestFailed("cancelled")
            delay, problem = self._attempt(body, retries)
            if isinstance(problem, Completion):
                return problem
            if retries >= self.max_retries:
                raise RequestFailed(f"{problem} (gave up after {retries + 1} attempts)")
            retries += 1
            self.stats.retried()
            if self._cancel.wait(delay):
                raise RequestFailed("cancelled")

    def _attempt(self, body: dict, retries: int) -> tuple[float, Completion | str]:
        """One request: (0, the completion), or (seconds to wait, what went wrong) for a retryable failure."""
        try:
            response = self._http.post("chat/completions", json=body)
        except httpx.TimeoutException:
            self.stats.count("timeout")
            return self._backoff(retries), "the request timed out"
        except httpx.TransportError as exc:
            self.stats.count("connection error")
            return self._backoff(retries), f"connection error: {exc}"
        status = response.status_code
        self.stats.count(str(status))
        if status == 200:
            try:
                data = response.json()
                text = data["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                return self._backoff(retries), "the server's response is not a chat completion"
            usage = data.get("usage") or {}
            return 0.0, Completion(text if isinstance(text, str) else "", int(usage.get("prompt_tokens") or 0),
                                   int(usage.get("completion_tokens") or 0))
        detail = response.text[:300].strip()
        if status in FATAL_STATUS:
            hint = {401: "check the API key", 403: "check the API key's permissions",
                    404: "check base_url and model"}[status]
            raise FatalAPIError(f"{response.request.url} answered {status} ({hint}): {detail}")
        if status in RETRYABLE_STATUS:
            after = retry_after_seconds(response.headers.get("retry-after"))
            if after is not None:
                self._pause_all(after)
                return after, f"HTTP {status}"
            return self._backoff(retries), f"HTTP {status}"
        raise RequestFailed(f"HTTP {status}: {detail}")

    def _backoff(self, retries: int) -> float:
        # Full jitter: spreads the retries of many workers that failed at the same moment.
        return random.uniform(0.0, min(self.backoff_max_s, self.backoff_initial_s * 2 ** min(retries, 30)))

    def _pause_all(self, seconds: float) -> None:
        with self._pause_lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _wait_for_pause(self) -> None:
        while True:
            with self._pause_lock:
                left = self._paused_until - time.monotonic()
            if left <= 0 or self._cancel.wait(left):
                return


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
