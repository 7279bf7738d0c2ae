"""probes.yaml → Config, or a list of problems that each name the key path and the line."""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import ValidationError

from monitor.config.envsubst import substitute
from monitor.config.model import Config
from monitor.config.secretfiles import resolve_secret_files
from monitor.config.units import format_duration
from monitor.config.webconfig import on_every_interface
from monitor.config.yamlsource import KeyProblem, Path, YamlProblem, line_for, load_yaml
from monitor.core.conditions import compile_condition
from monitor.core.secrets import Redactor
from monitor.core.templating import template_names

# Bigger files are not configurations; refusing them early keeps a typo'd path from hanging us.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    path: Path
    line: int | None
    message: str
    column: int | None = None  # known for YAML syntax errors

    def format(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        if self.line and self.column:
            where += f":{self.column}"
        key = dotted(self.path)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


class ConfigError(Exception):
    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.format(source) for p in problems))


LOCATION_ENV = "RECMON_LOCATION"  # used when the file sets no `location`


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    config: Config
    source: str
    # Every value substituted from the environment or read from a `*_file`: redacted from
    # all output.
    secrets: frozenset[str]
    # Valid, but probably not what was meant: check-config prints them, run and once log them.
    warnings: tuple[ConfigProblem, ...] = ()
    # The `*_file` secrets read: `recmon run` reloads when one of them changes.
    secret_files: frozenset[str] = frozenset()


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def load_config_file(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    source = str(path)
    try:
        file = FilePath(path)
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(source, [ConfigProblem((), None, "file is larger than 4 MiB")])
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(source, [ConfigProblem((), None, "file is not UTF-8 text")]) from None
    except OSError as exc:
        raise ConfigError(
            source, [ConfigProblem((), None, f"cannot read: {exc.strerror}")]
        ) from None
    base = FilePath(path).resolve().parent
    loaded = load_config_text(text, source=source, environ=environ, base_dir=base)
    config = _with_absolute_paths(loaded.config, base)
    problems = _trust_file_problems(config) + _tenants_file_problems(config)
    if problems:
        _, lines = load_yaml(text)
        raise ConfigError(
            source, [ConfigProblem(key, line_for(key, lines), message) for key, message in problems]
        )
    return LoadedConfig(config, loaded.source, loaded.secrets, loaded.warnings, loaded.secret_files)


def _tenants_file_problems(config: Config) -> list[tuple[Path, str]]:
    """The tenants file is read when recmon starts probing: one that is not there would pass
    check-config and then stop `recmon once` with exit 2."""
    path = config.tenants.file
    if path is None:
        return []
    file = FilePath(path)
    if not file.is_file():
        return [(("tenants", "file"), f"no such file: {path}")]
    if not os.access(file, os.R_OK):
        return [(("tenants", "file"), f"cannot read: {path}")]
    return []


def _trust_file_problems(config: Config) -> list[tuple[Path, str]]:
    """CA files are loaded when recmon builds its clients: a missing or garbled one is a
    configuration error now, not a crash at startup or in the middle of a reload."""
    files: list[tuple[Path, str | None]] = [(("tls", "ca_file"), config.tls.ca_file)]
    files += [
        (("targets", name, "tls", "ca_file"), target.tls.ca_file)
        for name, target in config.targets.items()
    ]
    problems: list[tuple[Path, str]] = []
    for key, ca_file in files:
        if ca_file is None:
            continue
        try:
            ssl.create_default_context(cafile=ca_file)
        except FileNotFoundError:
            problems.append((key, f"no such file: {ca_file}"))
        except (OSError, ssl.SSLError) as exc:
            problems.append((key, f"not a usable CA file ({ca_file}): {exc}"))
    for name, target in config.targets.items():
        tls = target.tls
        if tls.cert_file is None or tls.key_file is None:
            continue
        try:
            ssl.create_default_context().load_cert_chain(tls.cert_file, tls.key_file)
        except FileNotFoundError as exc:
            problems.append(
                (("targets", name, "tls", "cert_file"), f"no such file: {exc.filename}")
            )
        except (OSError, ssl.SSLError) as exc:
            # OpenSSL's words only: never the key's bytes.
            problems.append(
                (
                    ("targets", name, "tls", "cert_file"),
                    f"not a usable certificate and key ({tls.cert_file}, {tls.key_file}): "
                    f"{getattr(exc, 'reason', None) or exc.strerror or type(exc).__name__}",
                )
            )
    return problems


def _with_absolute_paths(config: Config, base: FilePath) -> Config:
    """Relative paths in a file are relative to that file, wherever recmon was started."""

    def absolute(value: str | None) -> str | None:
        return None if value is None else str(base / value)

    credentials = config.tenants.credentials
    if credentials is not None:
        credentials = credentials.model_copy(
            update={"dir": absolute(credentials.dir), "file": absolute(credentials.file)}
        )
    tenants = config.tenants.model_copy(
        update={"file": absolute(config.tenants.file), "credentials": credentials}
    )
    tls = config.tls.model_copy(update={"ca_file": absolute(config.tls.ca_file)})
    state = config.state.model_copy(update={"path": absolute(config.state.path)})
    metrics = config.metrics.model_copy(
        update={"web_config_file": absolute(config.metrics.web_config_file)}
    )
    targets = {
        name: target.model_copy(
            update={
                "tls": target.tls.model_copy(
                    update={
                        "ca_file": absolute(target.tls.ca_file),
                        "cert_file": absolute(target.tls.cert_file),
                        "key_file": absolute(target.tls.key_file),
                    }
                )
            }
        )
        for name, target in config.targets.items()
    }
    return config.model_copy(
        update={
            "tenants": tenants,
            "tls": tls,
            "state": state,
            "targets": targets,
            "metrics": metrics,
        }
    )


def load_config_text(
    text: str,
    *,
    source: str = "<config>",
    environ: Mapping[str, str] | None = None,
    base_dir: FilePath | None = None,
) -> LoadedConfig:
    environ = os.environ if environ is None else environ
    try:
        data, lines = load_yaml(text)
    except YamlProblem as exc:
        raise ConfigError(source, [ConfigProblem((), exc.line, exc.message, exc.column)]) from None
    if not isinstance(data, dict):
        raise ConfigError(
            source, [ConfigProblem((), 1, "the configuration must be a mapping of keys")]
        )

    if data.get("location") is None and environ.get(LOCATION_ENV):
        # The same file in every cluster, the location from the pod's environment.
        data = {"location": environ[LOCATION_ENV], **data}
    substituted = substitute(data, environ)
    from_files = resolve_secret_files(substituted.data, base_dir or FilePath.cwd())
    # Validation messages may quote a value that came from the environment or a file.
    redactor = Redactor(substituted.secrets | from_files.secrets)
    raw_problems: list[KeyProblem] = [*substituted.problems, *from_files.problems]
    problems = [ConfigProblem(p.path, line_for(p.path, lines), p.message) for p in raw_problems]
    try:
        config = Config.model_validate(from_files.data)
    except ValidationError as exc:
        # A value left empty by a missing variable, or by a `<key>_file` that could not be
        # read, fails validation too; say it once.
        unset = {p.path for p in problems} | {
            (*p.path[:-1], str(p.path[-1]).removesuffix("_file"))
            for p in from_files.problems
            if p.path and str(p.path[-1]).endswith("_file")
        }
        problems += [p for p in _pydantic_problems(exc, lines) if p.path not in unset]
        raise ConfigError(source, _redacted(problems, redactor)) from None
    if problems:
        raise ConfigError(source, problems)

    problems = [
        ConfigProblem(path, line_for(path, lines), message)
        for path, message in _cross_check(config)
    ]
    if problems:
        raise ConfigError(source, _redacted(problems, redactor))
    secrets = (
        frozenset(substituted.secrets) | frozenset(from_files.secrets) | _literal_secrets(config)
    )
    warnings = tuple(
        ConfigProblem(path, line_for(path, lines), redactor.redact(message))
        for path, message in _warnings(config)
    )
    return LoadedConfig(config, source, secrets, warnings, frozenset(from_files.files))


def _redacted(problems: list[ConfigProblem], redactor: Redactor) -> list[ConfigProblem]:
    return [ConfigProblem(p.path, p.line, redactor.redact(p.message)) for p in problems]


# Query parameters whose values are credentials (?token=..., ?api_key=...).
_SECRET_PARAMS = ("token", "key", "secret", "password", "passwd", "signature", "sig", "auth")
# A dead man's switch URL usually is its own credential (https://hc-ping.com/<uuid>).
_MIN_PATH_TOKEN = 16


def _secret_name(name: str) -> bool:
    return any(word in name.lower() for word in _SECRET_PARAMS)


def _literal_secrets(config: Config) -> frozenset[str]:
    """Values that are secrets even when written in the file: routing keys, header values
    (Authorization, API keys), passwords and credential query parameters in URLs, and the
    token at the end of a heartbeat URL."""
    values: set[str] = set()
    headers: list[dict[str, str]] = [t.headers for t in config.targets.values()]
    headers += [c.request.headers for c in config.checks.values()]
    if config.tenants.discover is not None:
        headers.append(config.tenants.discover.headers)
    for target in config.targets.values():
        if target.basic_auth is not None:
            values |= {target.basic_auth.password, target.basic_auth.credentials}
        if target.oauth2 is not None:
            values.add(target.oauth2.client_secret)
            values |= {v for k, v in target.oauth2.endpoint_params.items() if _secret_name(k)}
    notify = config.notify
    if notify.pagerduty is not None:
        values.add(notify.pagerduty.routing_key)
    for sink in (notify.alertmanager, notify.webhook):
        if sink is not None:
            headers.append(sink.headers)
    for mapping in headers:
        for value in mapping.values():
            # "Bearer abc": the credential is the last word; keep the scheme readable.
            values.add(value.split(" ", 1)[-1] if " " in value else value)
    urls = [t.base_url for t in config.targets.values()]
    urls += [t.proxy for t in config.targets.values() if t.proxy is not None]
    urls += [
        u.url for u in (notify.alertmanager, notify.webhook, notify.heartbeat) if u is not None
    ]
    if notify.pagerduty is not None:
        urls.append(notify.pagerduty.url)
    if config.tenants.discover is not None:
        urls.append(config.tenants.discover.url)
    for url in urls:
        parts = urlsplit(url)
        if parts.password:
            values.add(parts.password)
            # What goes over the wire for user:password@ in a URL: an echo of the request
            # carries this form, not the password.
            credentials = f"{unquote(parts.username or '')}:{unquote(parts.password)}"
            values.add(base64.b64encode(credentials.encode()).decode())
            values.add(unquote(parts.password))  # as it goes out, in a Basic credential
        for name, value in parse_qsl(parts.query):
            if _secret_name(name) and value:
                values.add(value)
    if notify.heartbeat is not None:
        token = urlsplit(notify.heartbeat.url).path.rstrip("/").rsplit("/", 1)[-1]
        if len(token) >= _MIN_PATH_TOKEN:
            values.add(token)
    return frozenset(v for v in values if "{" not in v)


def _pydantic_problems(exc: ValidationError, lines: dict[Path, int]) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        path = tuple(
            part for part in error["loc"] if isinstance(part, int) or not _is_schema_tag(part)
        )
        problems.append(ConfigProblem(path, line_for(path, lines), _message(error)))
    return sorted(problems, key=lambda p: (p.line or 0, dotted(p.path)))


def _is_schema_tag(part: str) -> bool:
    # pydantic adds tags such as "function-after[...]" or "list[str]" for unions and validators.
    return "[" in part or ("-" in part and part.startswith(("function", "json-or")))


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string (quote it in YAML)",
    "list_type": "expected a list",
    "dict_type": "expected a mapping of keys",
    "model_type": "expected a mapping of keys",
    "model_attributes_type": "expected a mapping of keys",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "too_short": "needs at least {min_length} item(s)",
    "too_long": "takes at most {max_length} item(s)",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "literal_error": "expected one of {expected}",
    "enum": "expected one of {expected}",
    "string_pattern_mismatch": "does not have the expected form ({pattern})",
    "datetime_type": "expected a date and time like 2026-12-24T18:00:00Z",
    "datetime_parsing": "expected a date and time like 2026-12-24T18:00:00Z ({error})",
    "datetime_from_date_parsing": "expected a date and time like 2026-12-24T18:00:00Z ({error})",
    "timezone_aware": "needs a time zone, like 2026-12-24T18:00:00Z or +01:00",
}


def _message(error: Any) -> str:
    """recmon's wording for pydantic's errors ("Input should be a valid integer, unable to
    parse string as an integer" reads as the library talking); our own validators' text as
    they wrote it."""
    template = _MESSAGES.get(error["type"])
    if template is not None:
        try:
            return template.format(**error.get("ctx", {}))
        except (KeyError, IndexError):
            pass
    message: str = error["msg"]
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    # Whatever pydantic says that is not mapped above, said as recmon says it.
    if message.startswith("Input should be "):
        message = "expected " + message.removeprefix("Input should be ")
    return message


# A probe interval longer than a day is no synthetic monitoring (every alert rule's window is
# minutes to hours): almost always a unit typo, like 10000w for 10000s.
MAX_INTERVAL_S = 86_400.0


def _interval_problems(config: Config) -> list[tuple[Path, str]]:
    problems: list[tuple[Path, str]] = []
    spans: list[tuple[Path, float | None]] = [(("defaults", "interval"), config.defaults.interval)]
    spans += [(("checks", n, "interval"), c.interval) for n, c in config.checks.items()]
    for key, seconds in spans:
        if seconds is not None and seconds > MAX_INTERVAL_S:
            problems.append(
                (
                    key,
                    f"interval {format_duration(seconds)} is longer than a day: probes that "
                    "far apart never fill an alert window (a unit typo?)",
                )
            )
    return problems


def _warnings(config: Config) -> list[tuple[Path, str]]:
    """Settings that work, though probably not as meant."""
    warnings: list[tuple[Path, str]] = []
    for name, check in config.checks.items():
        if not check.enabled:
            continue
        interval, timeout = config.interval_of(name), config.timeout_of(name)
        if timeout > interval:
            key: Path = (
                ("checks", name, "timeout")
                if check.timeout is not None
                else ("checks", name, "interval")
                if check.interval is not None
                else ("defaults", "timeout")
            )
            warnings.append(
                (
                    key,
                    f"check {name}: timeout {format_duration(timeout)} is longer than its "
                    f"interval {format_duration(interval)}: a hanging target still holds the "
                    "previous probe when the next is due, and that one is skipped",
                )
            )
    # Set in the file, that is: the defaults (256 against one target's 100) are not a choice
    # someone made, and a probe beyond a target's pool only waits, untimed, for its turn.
    used = {config.checks[n].target for n in config.checks if config.checks[n].enabled}
    connections = sum(t.max_connections for n, t in config.targets.items() if n in used)
    engine = config.engine
    if used and "max_in_flight" in engine.model_fields_set and engine.max_in_flight > connections:
        warnings.append(
            (
                ("engine", "max_in_flight"),
                f"{engine.max_in_flight} probes in flight, but the targets allow "
                f"{connections} connections (sum of max_connections): the probes beyond "
                "that only wait for a connection; set it at or below the sum, or raise "
                "max_connections",
            )
        )
    if on_every_interface(config.metrics.listen) and config.metrics.web_config_file is None:
        warnings.append(
            (
                ("metrics", "listen"),
                f"{config.metrics.listen} serves the status page, /status and /metrics (tenant "
                "names, failure reasons) to every network this host is on, without TLS or "
                "authentication: set metrics.web_config_file (TLS, basic auth), or listen on "
                "127.0.0.1",
            )
        )
    return warnings


def _cross_check(config: Config) -> list[tuple[Path, str]]:
    """Relations pydantic cannot see: references between sections and template variables."""
    problems: list[tuple[Path, str]] = _interval_problems(config)
    for name, check in config.checks.items():
        if check.target not in config.targets:
            known = ", ".join(sorted(config.targets)) or "none defined"
            problems.append(
                (("checks", name, "target"), f"unknown target {check.target!r} (targets: {known})")
            )
        if check.after is not None:
            if check.after not in config.checks:
                problems.append((("checks", name, "after"), f"unknown check {check.after!r}"))
            elif not config.checks[check.after].enabled and check.enabled:
                problems.append((("checks", name, "after"), f"check {check.after!r} is disabled"))

    if config.engine.transport != "asyncio":
        problems += [
            (
                ("targets", name, "addresses"),
                f"needs engine.transport asyncio (it is {config.engine.transport})",
            )
            for name, target in config.targets.items()
            if target.addresses
        ]

    discover = config.tenants.discover
    if discover is not None and discover.target not in (None, *config.targets):
        known = ", ".join(sorted(config.targets))
        problems.append(
            (
                ("tenants", "discover", "target"),
                f"unknown target {discover.target!r} (targets: {known})",
            )
        )
    for name in config.checks:
        seen = [name]
        current = config.checks[name].after
        while current is not None and current in config.checks:
            if current in seen:
                cycle = " -> ".join([*seen, current])
                problems.append(
                    (("checks", name, "after"), f"checks depend on each other in a cycle: {cycle}")
                )
                break
            seen.append(current)
            current = config.checks[current].after

    credentials = config.tenant_credential_names
    for variable in sorted(credentials):
        # A fallback value would send some other credential, or none, for a tenant whose own
        # is missing: such a tenant is skipped instead.
        if variable in config.tenants.default_vars:
            problems.append(
                (
                    ("tenants", "default_vars", variable),
                    f"{{{variable}}} comes from tenants.credentials: a default would be sent "
                    "for tenants without their own credential",
                )
            )
        for tenant, values in config.tenants.vars.items():
            if variable in values:
                problems.append(
                    (
                        ("tenants", "vars", tenant, variable),
                        f"{{{variable}}} comes from tenants.credentials, not tenants.vars",
                    )
                )
    known_vars = {"tenant"} | set(config.tenants.default_vars) | credentials
    for tenant_vars in config.tenants.vars.values():
        known_vars |= set(tenant_vars)
    for name, check in config.checks.items():
        captured = config.captures_before(name)
        available = known_vars | captured
        # Variables every tenant has: the rest must be set for each listed tenant (a missing
        # credential is a runtime matter: the tenant is skipped and counted).
        shared = {"tenant"} | set(config.tenants.default_vars) | captured | credentials
        request = check.request
        fields: dict[str, Any] = {
            "path": request.path,
            "params": request.params,
            "headers": request.headers,
            "json": request.json_body,
        }
        for field, value in fields.items():
            names = template_names(value)
            for missing in sorted(names - available):
                problems.append(
                    (
                        ("checks", name, "request", field),
                        f"template variable {{{missing}}} is not defined: set it in "
                        "tenants.default_vars, tenants.vars, tenants.credentials.variable or "
                        "capture it in an earlier check",
                    )
                )
            problems += _set_for_some_tenants_only(config, name, field, names - shared)
        for index, condition in enumerate(check.expect.conditions):
            used = (
                compile_condition(
                    condition.name, condition.path, condition.op, condition.value
                ).names
                if not condition.length
                else frozenset()
            )
            for missing in sorted(used - available):
                problems.append(
                    (
                        ("checks", name, "expect", "conditions", index, "value"),
                        f"template variable {{{missing}}} is not defined: set it in "
                        "tenants.default_vars or tenants.vars, or capture it in an earlier check",
                    )
                )

    if config.tenants.static is not None:
        static = set(config.tenants.static)
        for tenant in config.tenants.vars:
            if tenant not in static:
                problems.append(
                    (("tenants", "vars", tenant), "not a tenant listed in tenants.static")
                )
    return problems


def _set_for_some_tenants_only(
    config: Config, check: str, field: str, per_tenant: set[str]
) -> list[tuple[Path, str]]:
    """A variable only some listed tenants define: the others would never be probed."""
    if config.tenants.static is None:
        return []
    problems: list[tuple[Path, str]] = []
    for variable in sorted(per_tenant):
        lacking = [
            t for t in config.tenants.static if variable not in config.tenants.vars.get(t, {})
        ]
        if lacking and len(lacking) < len(config.tenants.static):
            shown = ", ".join(lacking[:5]) + (" …" if len(lacking) > 5 else "")
            problems.append(
                (
                    ("checks", check, "request", field),
                    f"template variable {{{variable}}} is set for some tenants only; not for "
                    f"{shown}: add it to tenants.default_vars or to each tenant's tenants.vars",
                )
            )
    return problems
