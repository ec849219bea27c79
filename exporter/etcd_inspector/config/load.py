"""Reading YAML into a raw mapping, merging raw mappings, and validating them into Config."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from .durations import FROM_FILE
from .errors import ConfigError, messages, type_name
from .probes import ProbeSpecLike
from .schema import Config, Document

# Far deeper than any sensible file (its deepest key is at level 7) and far from the recursion
# limit, which PyYAML's composer hits at a few hundred levels (a RecursionError, no message).
MAX_DEPTH = 100


def parse_config(
    raw: Mapping[str, Any] | None,
    specs: Mapping[str, ProbeSpecLike],
    source: str = "<config>",
) -> Config:
    """Validate a raw YAML mapping into a Config; raises ConfigError listing every problem."""
    try:
        context = {"specs": specs, FROM_FILE: True}
        document = Document.model_validate({} if raw is None else raw, context=context)
        return document.to_config(specs)
    except ValidationError as e:
        raise ConfigError(messages(e), source) from None
    except RecursionError:
        # Only for raw mappings built in code; load_config_file limits the depth already.
        raise ConfigError([f"top level: nested deeper than {MAX_DEPTH} levels"], source) from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that records duplicate mapping keys instead of keeping the last one, and
    refuses documents nested deeper than MAX_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicate_keys: list[str] = []
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            # Keys pulled in by a "<<" merge may legitimately be overridden.
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            ident = (key_node.tag, key_node.value)
            line = key_node.start_mark.line + 1
            if ident in first_line:
                self.duplicate_keys.append(
                    f"line {line}: duplicate key {key_node.value!r} "
                    f"(first defined at line {first_line[ident]})"
                )
            else:
                first_line[ident] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_error_message(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None)
    if mark is not None and problem:
        context = getattr(e, "context", None)
        prefix = f"{context}: " if context else ""
        return f"invalid YAML: {prefix}{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return f"invalid YAML: {e}"


def load_config_file(path: str, specs: Mapping[str, ProbeSpecLike] | None = None) -> dict[str, Any]:
    """Read a YAML config file into a raw mapping, not yet validated (``specs`` is unused: call
    sites mirror parse_config). An empty file gives {} so the CLI can lay flags over it."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError([f"cannot read config file: {e.strerror or e}"], path) from e
    except UnicodeDecodeError as e:
        raise ConfigError([f"config file is not valid UTF-8: {e}"], path) from e
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as e:
        raise ConfigError([_yaml_error_message(e)], path) from e
    finally:
        loader.dispose()
    if loader.duplicate_keys:
        raise ConfigError(loader.duplicate_keys, path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"top level: expected a mapping, got {type_name(data)}"], path)
    return data


def merge_raw(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge raw config mappings: overrides win, nested mappings merge, lists are replaced.

    Neither input is modified and the result shares no mutable values with them, so the
    CLI can merge flags over a loaded file and keep the file's dict for a later reload.
    """
    merged: dict[str, Any] = {k: copy.deepcopy(v) for k, v in base.items()}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            current = merged.get(key)
            merged[key] = merge_raw(current if isinstance(current, Mapping) else {}, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
