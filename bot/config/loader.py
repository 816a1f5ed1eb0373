"""Reading app.yaml: YAML that refuses a key written twice, validated into an AppConfig, or a
ConfigError listing every problem as "<key.path>: <message>", an unknown key with the nearest known one
and, when asked (`show_values`), a refused value with what was given."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.config.app_config import AppConfig
from bot.config.env import Env
from bot.config.errors import located
from bot.config.hints import described
from bot.core.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key written twice in one mapping instead of keeping the last."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str | int | float | bool):
            continue  # SafeLoader reports unhashable keys itself
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the file ({exc.__class__.__name__}: {exc})"]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}: invalid YAML{where}: {exc.problem or exc.context}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {exc}"]) from None


def parse_config(data: Any, *, show_values: bool = False) -> AppConfig:
    """Validate already-parsed app.yaml content; raise ConfigError with every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [f"(top level): expected a mapping of sections (slack, levels, …), got {type(data).__name__}"]
        )
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(described(AppConfig, located(exc), data, show_values=show_values)) from None


def load_config(path: str | Path, *, show_values: bool = False) -> AppConfig:
    """Read and validate app.yaml; raise ConfigError listing every problem with its key path."""
    return parse_config(_read_yaml(Path(path)), show_values=show_values)


def check_config(
    path: str | Path, env: Env | Sequence[str] | None = None, *, show_values: bool = False
) -> list[str]:
    """Every problem with app.yaml, followed by the environment's (an Env or a list of problems)."""
    try:
        load_config(path, show_values=show_values)
        problems: list[str] = []
    except ConfigError as exc:
        problems = list(exc.problems)
    if isinstance(env, Env):
        problems.extend(env.problems_for_run())
    elif env is not None:
        problems.extend(env)
    return problems
