"""Reading ``params.yaml``: the one place where stage parameters enter the program."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError

DEFAULT_PARAMS = Path("params.yaml")


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file with the safe loader, turning read and syntax errors into :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{line}: not valid YAML ({problem})") from None


def load_section(name: str, path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """One stage's section of ``params.yaml``."""
    params = load_yaml(path)
    if not isinstance(params, dict) or name not in params:
        raise ConfigError(f"{path}: no section '{name}'")
    section = params[name]
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: section '{name}' must be a mapping")
    return section
