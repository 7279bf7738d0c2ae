"""The web configuration file: TLS and basic authentication for what `recmon run` serves,
in the Prometheus exporters' format (exporter-toolkit's `--web.config.file`):

    tls_server_config:
      cert_file: server.crt          # relative paths: to this file's directory
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
      client_ca_file: clients-ca.crt
      min_version: TLS12             # default
    basic_auth_users:
      prometheus: $2b$10$...         # bcrypt hashes, never passwords

Parsed here (key paths and lines in every error, never a hash or a value in a message); the
server side (the TLS context, the basic-auth check) is telemetry.webauth's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from monitor.config.yamlsource import Path, YamlProblem, line_for, load_yaml

# exporter-toolkit's values; the two that ask for a certificate without verifying it have no
# equivalent in Python's ssl module and are refused rather than quietly made stricter.
CLIENT_AUTH_TYPES = ("NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
TLS_VERSIONS = ("TLS10", "TLS11", "TLS12", "TLS13")
_TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file"}
_TLS_KEYS |= {"min_version", "max_version"}
# exporter-toolkit keys recmon does not implement: an error, never silently less protection.
_UNSUPPORTED: dict[Path, str] = {
    ("tls_server_config", "cert"): "inline certificates: use cert_file",
    ("tls_server_config", "key"): "inline keys: use key_file",
    ("tls_server_config", "client_ca"): "an inline client CA: use client_ca_file",
    ("tls_server_config", "cipher_suites"): "choosing cipher suites",
    ("tls_server_config", "prefer_server_cipher_suites"): "choosing cipher suites",
    ("tls_server_config", "curve_preferences"): "choosing curves",
    ("tls_server_config", "client_allowed_sans"): "matching client certificate SANs",
    ("http_server_config",): "http_server_config (HTTP/2, extra headers)",
    ("rate_limit",): "rate limiting",
}
# Hosts that listen on every interface: what is served reaches whoever reaches the machine.
ALL_INTERFACES = ("0.0.0.0", "::", "")


def on_every_interface(listen: str) -> bool:
    """metrics.listen (host:port, [v6]:port) binds every interface."""
    return listen.rpartition(":")[0].strip("[]") in ALL_INTERFACES


# $2a$/$2b$/$2y$, a two-digit cost, 22 characters of salt and 31 of hash.
_BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


@dataclass(frozen=True, slots=True)
class WebConfig:
    source: str
    cert_file: str | None = None
    key_file: str | None = None
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    min_version: str = "TLS12"
    max_version: str | None = None
    # user → bcrypt hash. Not a secret in the sense of a password, but never logged either.
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def tls(self) -> bool:
        return self.cert_file is not None

    def describe(self) -> str:
        """What it protects with, for a log line: no hash, no file content."""
        parts = ["TLS" if self.tls else "no TLS"]
        if self.client_auth_type != "NoClientCert":
            parts.append(f"client certificates ({self.client_auth_type})")
        parts.append(f"basic auth for {len(self.users)} user(s)" if self.users else "no basic auth")
        return ", ".join(parts)


class WebConfigError(Exception):
    def __init__(self, source: str, problems: list[tuple[str, int | None, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.format())

    def format(self) -> str:
        return "; ".join(
            f"{self.source}" + (f":{line}" if line else "") + (f": {key}" if key else "") + f": {m}"
            for key, line, m in self.problems
        )


def load_web_config(path: str | FilePath) -> WebConfig:
    """Read and check a web configuration file; WebConfigError names the file, key and line."""
    file = FilePath(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        message = f"cannot read the web configuration: {reason}"
        raise WebConfigError(str(file), [("", None, message)]) from None
    return parse_web_config(text, source=str(file), base=file.resolve().parent)


def parse_web_config(text: str, *, source: str, base: FilePath) -> WebConfig:
    try:
        data, lines = load_yaml(text)
    except YamlProblem as exc:
        raise WebConfigError(source, [("", exc.line, exc.message)]) from None
    problems: list[tuple[Path, str]] = []
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise WebConfigError(source, [("", 1, "expected a mapping of keys")])

    def unsupported(path: Path) -> bool:
        what = _UNSUPPORTED.get(path)
        if what is not None:
            problems.append((path, f"not supported by recmon: {what}"))
        return what is not None

    for key in data:
        if (str(key),) in _UNSUPPORTED:
            unsupported((str(key),))
        elif key not in ("tls_server_config", "basic_auth_users"):
            problems.append(((str(key),), "unknown key"))

    tls = data.get("tls_server_config")
    settings: dict[str, Any] = {}
    if tls is not None:
        if not isinstance(tls, dict):
            problems.append((("tls_server_config",), "expected a mapping"))
            tls = {}
        for key, value in tls.items():
            path: Path = ("tls_server_config", str(key))
            if unsupported(path):
                continue
            if key not in _TLS_KEYS:
                problems.append((path, "unknown key"))
            elif not isinstance(value, str) or not value:
                problems.append((path, "expected a non-empty string"))
            else:
                settings[str(key)] = value
        problems += _tls_problems(settings, base)

    users: dict[str, bytes] = {}
    given = data.get("basic_auth_users")
    if given is not None and not isinstance(given, dict):
        problems.append((("basic_auth_users",), "expected a mapping of user: bcrypt hash"))
    for user, hashed in (given or {}).items() if isinstance(given, dict) else ():
        path = ("basic_auth_users", str(user))
        if not isinstance(hashed, str) or not _BCRYPT.match(hashed):
            # Never the value: a password written here by mistake must not reach a log.
            problems.append((path, "not a bcrypt hash (htpasswd -nBC 10 \"\" | tr -d ':\\n')"))
        elif ":" in str(user) or not str(user):
            problems.append((path, "a user name may not be empty or contain ':'"))
        else:
            users[str(user)] = hashed.encode()

    if problems:
        raise WebConfigError(
            source,
            [(".".join(map(str, p)), line_for(p, lines), message) for p, message in problems],
        )

    def absolute(name: str) -> str | None:
        value = settings.get(name)
        return None if value is None else str(base / value)

    return WebConfig(
        source=source,
        cert_file=absolute("cert_file"),
        key_file=absolute("key_file"),
        client_auth_type=settings.get("client_auth_type", "NoClientCert"),
        client_ca_file=absolute("client_ca_file"),
        min_version=settings.get("min_version", "TLS12"),
        max_version=settings.get("max_version"),
        users=users,
    )


def _tls_problems(settings: Mapping[str, str], base: FilePath) -> list[tuple[Path, str]]:
    problems: list[tuple[Path, str]] = []
    at: Path = ("tls_server_config",)
    for key in ("cert_file", "key_file"):
        if key not in settings:
            problems.append(((*at, key), "required with tls_server_config"))
    auth = settings.get("client_auth_type", "NoClientCert")
    if auth in _UNVERIFIED_CLIENT_AUTH:
        problems.append(
            (
                (*at, "client_auth_type"),
                f"{auth} accepts certificates it does not verify; not supported by recmon: "
                "use RequireAndVerifyClientCert (or VerifyClientCertIfGiven)",
            )
        )
    elif auth not in CLIENT_AUTH_TYPES:
        problems.append(((*at, "client_auth_type"), f"one of {', '.join(CLIENT_AUTH_TYPES)}"))
    elif auth != "NoClientCert" and "client_ca_file" not in settings:
        problems.append(((*at, "client_ca_file"), f"required with client_auth_type {auth}"))
    elif auth == "NoClientCert" and "client_ca_file" in settings:
        problems.append(
            (
                (*at, "client_auth_type"),
                "client_ca_file is set but client_auth_type is NoClientCert: set "
                "RequireAndVerifyClientCert to check client certificates",
            )
        )
    for key in ("min_version", "max_version"):
        if key in settings and settings[key] not in TLS_VERSIONS:
            problems.append(((*at, key), f"one of {', '.join(TLS_VERSIONS)}"))
    for key in ("cert_file", "key_file", "client_ca_file"):
        if key in settings and not (base / settings[key]).is_file():
            problems.append(((*at, key), f"no such file: {base / settings[key]}"))
    return problems
