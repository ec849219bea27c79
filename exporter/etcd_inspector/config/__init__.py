"""Strict YAML configuration for etcd-inspector, validated with pydantic v2.

As blackbox_exporter's: unknown keys are rejected (a typo must not fall back to a default)
and every problem is listed at once, so one ``--config.check`` shows the whole list. Every
mapping is a ``fields.Section``; durations follow ``durations.DurationRule``. Relative file
paths are checked against the working directory, where the etcd adapter will open them.

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
from .schema import ClusterConfig, Config, EndpointConfig, ScrapeConfig, TLSConfig, WebConfig

__all__ = [
    "ClusterConfig",
    "Config",
    "ConfigError",
    "Duration",
    "EndpointConfig",
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
