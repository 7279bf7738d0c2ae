"""Keeping secrets out of every output: logs, errors, metrics, status pages, config dumps.

Two nets. The process's `Redactor` knows every secret recmon holds (configuration, tenants'
keys, tokens) in every form it sends them (raw, URL-encoded, a Basic credential). And what a
peer answers (a token endpoint's error, a discovery body, a sink's answer) is scrubbed of the
secrets of the very request it answered (`scrub`), whether recmon knew them as secrets or not.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus

import httpx

REDACTED = "[REDACTED]"
# Shorter values would redact ordinary words and numbers everywhere while protecting nothing.
MIN_SECRET_LENGTH = 4


def sent_forms(secret: str) -> set[str]:
    """A secret as it may have gone out, and come back in an echo: as is, and URL-encoded
    (a query string, a form body, a Basic credential's form-encoded parts)."""
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}


def basic_credentials(user: str, password: str) -> str:
    """What an `Authorization: Basic` header carries for user:password."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


class Redactor:
    """Knows every secret value the process holds and scrubs them from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        fresh = {f for s in secrets for f in sent_forms(s) if len(f) >= MIN_SECRET_LENGTH}
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

    @property
    def secrets(self) -> frozenset[str]:
        """Every value redacted, each in every form it is sent in."""
        return self._secrets


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
# Form fields that are the protocol, not a credential (grant_type=client_credentials).
_PLAIN_FORM_FIELDS = frozenset({"grant_type", "scope"})
# Credentials by their form, whoever they belong to: "Basic dXNlcjpwYXNz", "Bearer eyJ...".
_SCHEME_TOKEN = re.compile(r"(?i)\b(basic|bearer|token|digest|apikey)(\s+)[A-Za-z0-9._~+/=-]{6,}")
_MIN_QUERY_SECRET = 8
_FORM = "application/x-www-form-urlencoded"


def request_of(source: httpx.Response | httpx.HTTPError) -> httpx.Request | None:
    """The request behind a response or error; None when it was built or raised without one."""
    try:
        return source.request
    except RuntimeError:
        return None


def request_secrets(request: httpx.Request) -> set[str]:
    """Every credential `request` carried, in each form it carried it: header values (and a
    Basic header's user:password decoded), the URL's password and query values, the values
    of a form body (client_secret_post). A Redactor adds their URL-encoded forms."""
    values: set[str] = set()
    for name, value in request.headers.items():
        if name.lower() in _PLAIN_HEADERS:
            continue
        scheme, _, credential = value.partition(" ")
        values |= {value, credential or scheme}
        if scheme.lower() == "basic" and credential:
            values |= _basic_parts(credential)
    if request.url.password:
        values |= {request.url.password, unquote(request.url.password)}
    values.update(v for _, v in request.url.params.multi_items() if len(v) >= _MIN_QUERY_SECRET)
    if request.headers.get("content-type", "").startswith(_FORM):
        try:
            body = request.content.decode()
        except (httpx.RequestNotRead, UnicodeDecodeError):
            body = ""
        values.update(
            v
            for k, v in parse_qsl(body)
            if k not in _PLAIN_FORM_FIELDS and len(v) >= _MIN_QUERY_SECRET
        )
    return values


def _basic_parts(credential: str) -> set[str]:
    """user:password and the password of a Basic credential, as sent (OAuth2 form-encodes
    both before base64, RFC 6749 2.3.1) and decoded."""
    try:
        decoded = base64.b64decode(credential, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return set()
    user, _, password = decoded.partition(":")
    return {
        decoded,
        password,
        unquote_plus(password),
        f"{unquote_plus(user)}:{unquote_plus(password)}",
    }


class Scrubber:
    """What `scrub` does, for many texts answering one request (compiled once)."""

    def __init__(self, request: httpx.Request | None, also: Iterable[str] = ()) -> None:
        values = set(also)
        if request is not None:
            values |= request_secrets(request)
        self._redactor = Redactor(values)
        self._forms = self._redactor.secrets
        # Only these are looked for inside a text: a short header value ("en-US") is scrubbed
        # from what is said, but must not make a whole text (a tenant id) a credential.
        self._long_forms = tuple(f for f in self._forms if len(f) >= _MIN_QUERY_SECRET)

    def __call__(self, text: str) -> str:
        return _SCHEME_TOKEN.sub(_scheme_redacted, self._redactor.redact(text))

    def holds(self, text: str) -> bool:
        """Whether `text` is one of the request's credentials or contains one of at least 8
        characters (substring tests: many times faster than the pattern on short texts)."""
        return text in self._forms or any(form in text for form in self._long_forms)

    def holds_any(self, texts: Iterable[str]) -> bool:
        """Whether any of `texts` holds() a credential: one search over them all (100,000
        tenant ids: milliseconds), so that one by one is needed only on a hit."""
        texts = list(texts)
        joined = "\n".join(texts)
        return any(f in joined for f in self._long_forms) or not self._forms.isdisjoint(texts)


def _scheme_redacted(match: re.Match[str]) -> str:
    return f"{match.group(1)}{match.group(2)}{REDACTED}"


def scrub(text: str, request: httpx.Request | None, also: Iterable[str] = ()) -> str:
    """`text`, what a peer answered to `request`, without the credentials of that request
    (see request_secrets), without `also` (secrets the request carried elsewhere, say in a
    JSON body) and without anything shaped like an Authorization credential."""
    return Scrubber(request, also)(text)
