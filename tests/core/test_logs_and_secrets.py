from __future__ import annotations

import base64
import io
import json
import logging
from urllib.parse import quote_plus

import httpx

from monitor.core.secrets import REDACTED, Redactor, scrub
from monitor.telemetry.logs import setup_logging


def capture(fmt: str, redactor: Redactor) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    setup_logging(fmt=fmt, level="debug", redactor=redactor, stream=stream)
    return logging.getLogger("recmon.test"), stream


def test_json_lines_are_parseable_with_fields() -> None:
    log, stream = capture("json", Redactor())
    log.info(
        "probe failed", extra={"fields": {"tenant": "acme", "outcome": "empty", "msg": "clash"}}
    )
    entry = json.loads(stream.getvalue())
    assert entry["msg"] == "probe failed"
    assert entry["tenant"] == "acme"
    assert entry["field_msg"] == "clash"
    assert entry["level"] == "info" and entry["logger"] == "recmon.test"
    assert entry["ts"].endswith("Z")


def test_secrets_are_scrubbed_from_messages_fields_and_tracebacks() -> None:
    redactor = Redactor(["hunter2-token"])
    log, stream = capture("json", redactor)
    log.warning(
        "header was Bearer %s", "hunter2-token", extra={"fields": {"auth": ["x", "hunter2-token"]}}
    )
    try:
        raise ValueError("bad hunter2-token")
    except ValueError:
        log.exception("failed")
    text = stream.getvalue()
    assert "hunter2-token" not in text
    assert text.count(REDACTED) >= 3
    for line in text.splitlines():
        json.loads(line)


def test_text_format_is_one_line_with_key_values() -> None:
    log, stream = capture("text", Redactor())
    log.info("progress", extra={"fields": {"probes": 20, "failing_sample": ["a b"]}})
    line = stream.getvalue().strip()
    assert "INFO    recmon.test: progress probes=20" in line
    assert "\n" not in line


def test_redactor_prefers_the_longest_secret_and_ignores_tiny_values() -> None:
    redactor = Redactor(["abcd", "abcdefgh", "x"])
    assert redactor.redact("abcdefgh abcd x") == f"{REDACTED} {REDACTED} x"


def test_a_secret_is_redacted_in_every_form_it_is_sent_in() -> None:
    # A query string or a form body carries it URL-encoded; an echo brings that form back.
    redactor = Redactor(["p+s/w=rd&more"])
    echoed = "got p+s/w=rd&more, p%2Bs%2Fw%3Drd%26more and p%2Bs/w%3Drd%26more"
    assert redactor.redact(echoed) == f"got {REDACTED}, {REDACTED} and {REDACTED}"


def test_scrub_removes_what_the_answered_request_carried_in_every_encoding() -> None:
    """A token endpoint's answer quoting its request: the Basic credential (base64 of the
    form-encoded id:secret, RFC 6749 2.3.1), the secret decoded from it, the form body."""
    secret = "cs/8+Zq=w&e7"
    request = httpx.Request(
        "POST",
        "http://idp.test/token",
        data={"grant_type": "client_credentials", "client_assertion": "assert-9f8e7d6c"},
    )
    basic = base64.b64encode(f"recmon-probe:{quote_plus(secret)}".encode()).decode()
    request.headers["authorization"] = f"Basic {basic}"
    said = (
        f"client revoked (presented recmon-probe:{secret} as Basic {basic}; "
        f"form client_secret={quote_plus(secret)}&client_assertion=assert-9f8e7d6c; "
        f"raw {basic})"
    )
    scrubbed = scrub(said, request)
    for form in (secret, quote_plus(secret), basic, "assert-9f8e7d6c"):
        assert form not in scrubbed, scrubbed
    assert "client revoked" in scrubbed and "grant_type" not in said  # the words stay
    # a secret sent outside headers and URL (a routing key in a JSON body)
    assert scrub("bad routing key rk-0a1b2c3d4e", None, ["rk-0a1b2c3d4e"]) == (
        f"bad routing key {REDACTED}"
    )
