"""Reading YAML into a raw mapping, merging raw mappings, and validating them into Config."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .durations import FROM_FILE
from .errors import ConfigError, messages
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


def load_config_file(path: str, specs: Mapping[str, ProbeSpecLike] | None = None) -> dict[str, Any]:
    """Read a YAML config file into a raw mapping, not yet validated (``specs`` is unused: call
    sites mirror parse_config). An empty file gives {} so the CLI can lay flags over it."""
    # PyYAML loads only with a file: `inspect --etcd.endpoints ...` never pays its import.
    from .yamlfile import read_yaml_mapping

    return read_yaml_mapping(path, MAX_DEPTH)


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
