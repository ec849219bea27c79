"""Strict YAML configuration for etcd-inspector, validated with pydantic v2.

Modeled on blackbox_exporter's config loading: every mapping rejects unknown keys (a typo
must not silently fall back to a default) and all problems are collected before raising,
so one ``--config.check`` run shows the whole list instead of one fix-and-retry at a time.

Conventions shared by every section:

* Types are strict: no "5" for an integer, no ``1`` for a boolean, a YAML list for a list.
* An optional key that is absent or explicitly ``null`` takes its default, because a bare
  ``timeout:`` line in YAML is almost always a half-finished edit rather than a request
  for "no value". (Probe options are the exception: there ``null`` is passed on as None.)
* Durations: **a number needs a unit, in the value or in the key.** A duration is a
  Prometheus duration string ("500ms", "1m30s"); a bare number is accepted only where the
  key's name carries the unit (``*_seconds``), and is then seconds. Durations are at most
  one year. One validator applies this rule everywhere: ``durations.DurationRule``.
* Relative file paths (TLS files, password_file) are checked against the process's
  working directory, which is also where the etcd adapter will open them.

Layout: ``durations`` (the duration rule), ``fields`` (value types and the behaviour every
mapping shares), ``schema`` (the configuration objects, which are also their sections'
schema), ``probe_options`` (probe sections, derived from the probes' option classes),
``document`` (the whole file), ``load`` (YAML in, Config or ConfigError out) and
``errors`` (ConfigError and how pydantic's errors become its lines).
"""

from .document import KEY_LABEL_MODES, LOG_FORMATS, LOG_LEVELS
from .durations import Duration, parse_duration
from .errors import ConfigError
from .load import load_config_file, merge_raw, parse_config
from .schema import (
    BackupConfig,
    ClusterConfig,
    Config,
    EndpointConfig,
    ProbeConfig,
    ProbeSpecLike,
    ScrapeConfig,
    TLSConfig,
    WebConfig,
)

__all__ = [
    "KEY_LABEL_MODES",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "BackupConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "Duration",
    "EndpointConfig",
    "ProbeConfig",
    "ProbeSpecLike",
    "ScrapeConfig",
    "TLSConfig",
    "WebConfig",
    "load_config_file",
    "merge_raw",
    "parse_config",
    "parse_duration",
]
