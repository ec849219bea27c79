"""Strict YAML configuration for etcd-inspector, validated with pydantic v2.

Modeled on blackbox_exporter's config loading: every mapping rejects unknown keys (a typo
must not silently fall back to a default) and all problems are collected before raising,
so one ``--config.check`` run shows the whole list instead of one fix-and-retry at a time.

Every mapping is a ``fields.Section`` (strict types, unknown keys with a "did you mean",
``null`` meaning the default, problems listed at once). Durations: **a number needs a unit,
in the value or in the key** (``durations.DurationRule``). Relative file paths are checked
against the working directory, which is also where the etcd adapter will open them.

Layout: ``errors`` (ConfigError; pydantic's errors as its lines), ``durations``, ``fields``
(Section and the value types), ``probes`` (probe sections, global and per cluster, and the
one place their defaults are resolved), ``schema`` (the sections, the file, ``Config``) and
``load`` (YAML in, Config or ConfigError out).
"""

from .durations import Duration, PositiveDuration, parse_duration
from .errors import ConfigError
from .fields import NonEmptyStr, Section, unique
from .load import load_config_file, merge_raw, parse_config
from .probes import ProbeConfig, ProbeSpecLike
from .schema import (
    ClusterConfig,
    Config,
    EndpointConfig,
    KeyLabels,
    LogFormat,
    LogLevel,
    ScrapeConfig,
    TLSConfig,
    WebConfig,
)

__all__ = [
    "ClusterConfig",
    "Config",
    "ConfigError",
    "Duration",
    "EndpointConfig",
    "KeyLabels",
    "LogFormat",
    "LogLevel",
    "NonEmptyStr",
    "PositiveDuration",
    "ProbeConfig",
    "ProbeSpecLike",
    "ScrapeConfig",
    "Section",
    "TLSConfig",
    "WebConfig",
    "load_config_file",
    "merge_raw",
    "parse_config",
    "parse_duration",
    "unique",
]
