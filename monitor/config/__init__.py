from monitor.config.loader import (
    ConfigError,
    ConfigProblem,
    LoadedConfig,
    load_config_file,
    load_config_text,
)
from monitor.config.model import CheckSpec, Config, Target

__all__ = [
    "CheckSpec",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "LoadedConfig",
    "Target",
    "load_config_file",
    "load_config_text",
]
