"""Keeping secrets out of every output: logs, errors, metrics, status pages, config dumps."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

import httpx

REDACTED = "[REDACTED]"
# Shorter values would redact ordinary words and numbers everywhere while protecting nothing.
MIN_SECRET_LENGTH = 4


class Redactor:
    """Knows every secret value the process holds and scrubs them from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        fresh = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}
        with self._lock:
            merged = self._secrets | fresh
            if merged == self._secrets:
                return
            self._secrets = merged
            # Longest first, so a secret that contains another is removed whole.
            ordered = sorted(merged, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None:
            return text
        return pattern.sub(REDACTED, text)

    def __contains__(self, value: str) -> bool:
        return value in self._secrets


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message (and exception text) with secrets removed."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = self.redactor.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: self._scrub(v) for k, v in fields.items()}
        return True

    def _scrub(self, value: object) -> object:
        if isinstance(value, str):
            return self.redactor.redact(value)
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in value.items()}
        return value


# Headers that carry no credential; every other header value recmon sent is treated as one.
_PLAIN_HEADERS = frozenset(
    {
        "host",
        "accept",
        "accept-encoding",
        "connection",
        "user-agent",
        "content-length",
        "content-type",
        "x-recmon-location",
    }
)
# Credentials by their form, whoever they belong to: "Basic dXNlcjpwYXNz", "Bearer eyJ...".
_SCHEME_TOKEN = re.compile(r"(?i)\b(basic|bearer|token|digest|apikey)(\s+)[A-Za-z0-9._~+/=-]{6,}")
_MIN_QUERY_SECRET = 8


def request_of(source: httpx.Response | httpx.HTTPError) -> httpx.Request | None:
    """The request behind a response or error; None when it was built or raised without one."""
    try:
        return source.request
    except RuntimeError:
        return None


def scrub(text: str, request: httpx.Request | None) -> str:
    """`text` without the credentials of `request` (header values, the URL's password and
    query values) and without anything shaped like an Authorization credential."""
    if request is not None:
        values: set[str] = set()
        for name, value in request.headers.items():
            if name.lower() not in _PLAIN_HEADERS:
                values.add(value)
                values.add(value.split(" ", 1)[-1])
        if request.url.password:
            values.add(request.url.password)
        values.update(v for _, v in request.url.params.multi_items() if len(v) >= _MIN_QUERY_SECRET)
        text = Redactor(values).redact(text)
    return _SCHEME_TOKEN.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
