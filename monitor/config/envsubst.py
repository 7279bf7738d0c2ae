"""${VAR} substitution from the environment, remembering every substituted value as a secret."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.config.yamlsource import KeyProblem, Path

_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?")


@dataclass
class Substitution:
    data: Any
    secrets: set[str] = field(default_factory=set)
    problems: list[KeyProblem] = field(default_factory=list)


def substitute(data: Any, environ: Mapping[str, str]) -> Substitution:
    """Replace ${NAME} and ${NAME:-default} in every string; "$$" stands for "$"."""
    result = Substitution(data=None)
    result.data = _walk(data, (), environ, result)
    return result


def _walk(value: Any, path: Path, environ: Mapping[str, str], out: Substitution) -> Any:
    if isinstance(value, str):
        return _substitute_string(value, path, environ, out)
    if isinstance(value, dict):
        return {k: _walk(v, (*path, str(k)), environ, out) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, (*path, i), environ, out) for i, v in enumerate(value)]
    return value


def _substitute_string(text: str, path: Path, environ: Mapping[str, str], out: Substitution) -> str:
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name is None:
            out.problems.append(KeyProblem(path, f"malformed reference {token!r}: use ${{NAME}}"))
            return ""
        if name in environ:
            value = environ[name]
        elif default is not None:
            return default
        else:
            out.problems.append(
                KeyProblem(
                    path, f"environment variable {name} is not set (referenced as ${{{name}}})"
                )
            )
            return ""
        out.secrets.add(value)
        return value

    return _REFERENCE.sub(replace, text)
