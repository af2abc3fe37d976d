"""Where the CLI finds the hub and the API token: never on the command line (a token in
``argv`` shows in ``ps`` and in shell histories).

- the hub's URL: ``--url``, else ``CELLHUB_URL``, else ``url`` in the config file;
- the token: ``CELLHUB_TOKEN``, else ``token`` in the config file.

The config file is TOML: ``--config PATH``, else ``CELLHUB_CONFIG``, else
``$XDG_CONFIG_HOME/cellhub/config.toml`` (``~/.config/cellhub/config.toml``)::

    url = "https://hub.example.org"
    token = "chub_..."

A config file that others may read gets a warning (``chmod 600`` it).
"""
from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

URL_VARIABLE = "CELLHUB_URL"
TOKEN_VARIABLE = "CELLHUB_TOKEN"
CONFIG_VARIABLE = "CELLHUB_CONFIG"


class ConfigError(Exception):
    """The config file cannot be read (the message names it)."""


@dataclass(frozen=True)
class Settings:
    url: Optional[str]
    token: Optional[str]
    config_path: Path


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "cellhub" / "config.toml"


def resolve(url: Optional[str], config: Optional[str]) -> Settings:
    """The URL and token from the options, the environment and the config file, in that order."""
    path = Path(config or os.environ.get(CONFIG_VARIABLE) or default_config_path()).expanduser()
    values = _read(path)
    return Settings(
        url=url or os.environ.get(URL_VARIABLE) or _text(values, "url", path),
        token=os.environ.get(TOKEN_VARIABLE) or _text(values, "token", path),
        config_path=path,
    )


def _read(path: Path) -> dict:
    if not path.is_file():
        return {}
    if os.name == "posix" and path.stat().st_mode & 0o077:
        print(f"warning: {path} may be read by other users; chmod 600 it", file=sys.stderr)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc}") from None


def _text(values: dict, key: str, path: Path) -> Optional[str]:
    value = values.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{path}: {key} must be a non-empty string")
    return value.strip()
