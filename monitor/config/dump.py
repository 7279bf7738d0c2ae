"""The effective configuration, defaults filled in, as YAML — for `recmon check-config --dump`.
Secrets are redacted by the caller's Redactor (every ${VAR} value, header and routing key)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import yaml
from pydantic import BaseModel

from monitor.config.model import Config
from monitor.config.units import Rate
from monitor.core.jsonpath import JsonPath


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {
            (field.alias or name): _plain(getattr(value, name))
            for name, field in type(value).model_fields.items()
        }
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, JsonPath):
        return value.text
    if isinstance(value, Rate):
        unit = {0.001: "ms", 1.0: "s", 60.0: "m", 3600.0: "h"}.get(value.period)
        return f"{value.count:g}/{unit}" if unit else f"{value.per_second:g}/s"
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def dump_config(config: Config) -> str:
    return yaml.safe_dump(_plain(config), sort_keys=False, allow_unicode=True)
