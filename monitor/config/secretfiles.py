"""`<key>_file`: secrets read from files (mounted Kubernetes Secrets), the Prometheus convention.

Runs on the raw configuration, before validation: `routing_key_file: /run/secrets/pd` sets
`routing_key` to the file's content (whitespace trimmed), `header_files: {X-Api-Key: path}`
adds the header. The `_file` key stays, so `--dump` shows where a secret came from; every value
read is a secret. `recmon run` watches these files and reloads when one changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from monitor.config.yamlsource import KeyProblem, Path

# key → where it may stand (None: anywhere its parent model accepts it; pydantic says where not).
_FILE_KEYS: dict[str, Path | None] = {
    "routing_key_file": None,
    "password_file": None,
    "client_secret_file": None,
    "url_file": ("notify", "heartbeat"),
}
MAX_SECRET_BYTES = 64 * 1024


@dataclass
class SecretFiles:
    data: Any
    secrets: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    problems: list[KeyProblem] = field(default_factory=list)


def read_secret_file(path: FilePath) -> str:
    """The secret in a file, surrounding whitespace (a trailing newline) removed. OSError or
    ValueError with a message that never carries the content."""
    if path.stat().st_size > MAX_SECRET_BYTES:
        raise ValueError("larger than 64 KiB: not a secret")
    try:
        return path.read_bytes().decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None


def resolve_secret_files(data: Any, base: FilePath) -> SecretFiles:
    out = SecretFiles(data=None)
    out.data = _walk(data, (), base, out)
    return out


def _walk(value: Any, path: Path, base: FilePath, out: SecretFiles) -> Any:
    if isinstance(value, list):
        return [_walk(v, (*path, i), base, out) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    resolved = {k: _walk(v, (*path, str(k)), base, out) for k, v in value.items()}
    for key, where in _FILE_KEYS.items():
        if key not in resolved or (where is not None and path != where):
            continue
        target = key.removesuffix("_file")
        if target in resolved:
            out.problems.append(KeyProblem((*path, key), f"set {target} or {key}, not both"))
            continue
        secret = _read((*path, key), resolved[key], base, out)
        if secret is not None:
            resolved[target] = secret
    files = resolved.get("header_files")
    if isinstance(files, dict):
        headers = resolved.get("headers")
        merged = dict(headers) if isinstance(headers, dict) else {}
        for name, file in files.items():
            where_key = (*path, "header_files", str(name))
            if name in merged:
                out.problems.append(KeyProblem(where_key, f"header {name} is also set in headers"))
                continue
            secret = _read(where_key, file, base, out)
            if secret is not None:
                merged[name] = secret
        if merged or "headers" in resolved:
            resolved["headers"] = merged
    return resolved


def _read(key: Path, file: Any, base: FilePath, out: SecretFiles) -> str | None:
    if not isinstance(file, str) or not file:
        out.problems.append(KeyProblem(key, "expected a file path"))
        return None
    path = base / file
    try:
        secret = read_secret_file(path)
    except OSError as exc:
        out.problems.append(KeyProblem(key, f"cannot read {path}: {exc.strerror}"))
        return None
    except ValueError as exc:
        out.problems.append(KeyProblem(key, f"cannot use {path}: {exc}"))
        return None
    if not secret:
        out.problems.append(KeyProblem(key, f"{path} is empty"))
        return None
    out.files.add(str(path))
    out.secrets.add(secret)
    return secret
