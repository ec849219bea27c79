"""A YAML config file into a raw mapping (PyYAML is imported only when a file is read)."""

from __future__ import annotations

from typing import Any

import yaml

from .errors import ConfigError, type_name


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that records duplicate mapping keys instead of keeping the last one, and
    refuses documents nested deeper than `max_depth`."""

    def __init__(self, stream: str, max_depth: int) -> None:
        super().__init__(stream)
        self.max_depth = max_depth
        self.duplicate_keys: list[str] = []
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {self.max_depth} levels", mark
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


def read_yaml_mapping(path: str, max_depth: int) -> dict[str, Any]:
    """The file's top-level mapping ({} for an empty file); ConfigError on anything else."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError([f"cannot read config file: {e.strerror or e}"], path) from e
    except UnicodeDecodeError as e:
        raise ConfigError([f"config file is not valid UTF-8: {e}"], path) from e
    loader = _StrictLoader(text, max_depth)
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
