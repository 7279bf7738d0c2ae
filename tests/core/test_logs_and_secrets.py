from __future__ import annotations

import io
import json
import logging

from monitor.core.secrets import REDACTED, Redactor
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
