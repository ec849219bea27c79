"""The sections of the file, each a ``Section`` (fields.py) whose defaults are written here, once.

``Document`` is the whole file; ``Config`` is what the exporter reads, with the probes'
settings resolved (probes.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import InitErrorDetails

from etcd_inspector.etcd.tls import check_files
from etcd_inspector.etcd.types import TLSFiles
from etcd_inspector.keyspace.keys import DEFAULT_SENSITIVE_PREFIXES
from etcd_inspector.sharding import Shard

from .durations import Duration, DurationRule, PositiveDuration
from .errors import problem, problems, reraise, type_name
from .fields import (
    ClientURL,
    ClusterName,
    ListenAddress,
    MemberURL,
    MetricsURL,
    NonEmptyStr,
    ReadableDir,
    ReadableFile,
    Regex,
    Section,
    TelemetryPath,
    client_url,
    duplicates,
    non_empty,
    unique,
)
from .probes import ProbeConfig, ProbeSpecLike, RawProbes, resolve_probes, validate_probes

LogLevel = Literal["debug", "info", "warn", "error"]
LogFormat = Literal["logfmt", "json"]
KeyLabels = Literal["full", "prefix", "hash"]


def _is_set(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


# --------------------------------------------------------------------------- TLS

# A Kubernetes TLS Secret mounted as a directory: these names, where present.
TLS_DIR_FILES = {"ca_file": "ca.crt", "cert_file": "tls.crt", "key_file": "tls.key"}


class TLSConfig(Section):
    ca_file: ReadableFile | None = None
    cert_file: ReadableFile | None = None
    key_file: ReadableFile | None = None
    server_name: NonEmptyStr | None = None
    insecure_skip_verify: bool = False
    # A directory holding ca.crt, tls.crt and tls.key (a mounted Kubernetes Secret); files
    # named explicitly win.
    dir: ReadableDir | None = None

    @property
    def enabled(self) -> bool:
        """Whether a custom TLS context is needed (https with system CAs needs none)."""
        return bool(self.ca_file or self.cert_file or self.key_file or self.insecure_skip_verify)

    @classmethod
    def prepare(cls, data: Mapping[str, Any]) -> Mapping[str, Any]:
        if not isinstance(data.get("dir"), str):
            return data
        filled = dict(data)
        for key, name in TLS_DIR_FILES.items():
            path = os.path.join(data["dir"], name)
            if filled.get(key) is None and os.path.isfile(path):
                filled[key] = path
        return filled

    @classmethod
    def checks(cls, data: Mapping[str, Any]) -> list[InitErrorDetails]:
        tls_dir = data.get("dir")
        if isinstance(tls_dir, str) and os.path.isdir(tls_dir):
            names = TLS_DIR_FILES.values()
            if not any(os.path.isfile(os.path.join(tls_dir, n)) for n in names):
                # Silently plain TLS with system CAs would fail later as "unknown authority".
                return [problem(("dir",), f"{tls_dir!r} holds none of {', '.join(names)}")]
        cert, key = _is_set(data.get("cert_file")), _is_set(data.get("key_file"))
        if cert != key:
            given, missing = ("cert_file", "key_file")[:: 1 if cert else -1]
            return [problem((), f"{given} is set but {missing} is not (a client cert needs both)")]
        keys = ("ca_file", "cert_file", "key_file")
        files = [data.get(k) if _is_set(data.get(k)) else None for k in keys]
        if any(f is not None and not os.path.isfile(f) for f in files):
            return []  # the missing file is reported on its own key
        # Loaded as the client will load them: a file that is not PEM, or a key that does not
        # match its certificate, is one line here rather than a traceback at the first call.
        return [problem((), message) for message in check_files(TLSFiles(*files))]


# --------------------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class EndpointConfig:
    url: str
    metrics_url: str


class _EndpointSection(Section):
    """The mapping form of an endpoint; ``metrics_url`` defaults to ``url`` + /metrics."""

    url: ClientURL
    metrics_url: MetricsURL | None = None


def _endpoint(item: object, info: ValidationInfo) -> EndpointConfig:
    """An endpoint is a client URL string or a mapping with url and metrics_url."""
    if isinstance(item, EndpointConfig):
        return item
    if isinstance(item, str):
        url = client_url(item)
        return EndpointConfig(url, f"{url}/metrics")
    if not isinstance(item, Mapping):
        raise ValueError(
            f"expected a URL string or a mapping with url/metrics_url, got {type_name(item)}"
        )
    try:
        section = _EndpointSection.model_validate(item, context=info.context)
    except ValidationError as e:
        # Raised again so that pydantic places the errors below this list item.
        raise problems("endpoint", [reraise(err) for err in e.errors()]) from None
    return EndpointConfig(section.url, section.metrics_url or f"{section.url}/metrics")


Endpoints = Annotated[
    tuple[Annotated[EndpointConfig, PlainValidator(_endpoint)], ...],
    # ``endpoints: null`` is an empty list here ("at least one..."), not a missing key.
    BeforeValidator(lambda value: () if value is None else value),
    non_empty("endpoint"),
    unique("endpoint", "endpoints", key=lambda endpoint: endpoint.url),
]


# --------------------------------------------------------------------------- clusters

_NO_SKIP_VERIFY = (
    "not supported for etcd's gRPC API (gRPC cannot skip certificate verification); give "
    "tls.ca_file, and tls.server_name if the certificate names another host "
    "(metrics_tls.insecure_skip_verify works for https metrics URLs)"
)
_BACKUP_MOVED = (
    "'backup' is no longer a cluster key: backup locations are the backup probe's options "
    "(probes: {backup: {locations: [...], max_age: ...}} in this cluster, or inspection.probes)"
)


class ClusterConfig(Section):
    """One etcd cluster.

    ``metrics_tls`` ``None`` (no such section) means "use ``tls`` for https metrics URLs too",
    left unresolved so consumers can tell an explicit metrics TLS setup from the inherited one.
    ``password_file`` is read at every login (etcd/auth.py): a rotated password needs no restart.
    ``discover``: also inspect the members the member list names that no endpoint reaches.
    ``probes``: overrides of ``inspection.probes`` as written (``Config.probes_for`` resolves).
    """

    keep_null = ("endpoints",)

    name: ClusterName
    endpoints: Endpoints
    tls: TLSConfig = Field(default_factory=TLSConfig)
    metrics_tls: TLSConfig | None = None
    username: NonEmptyStr | None = None
    password_file: ReadableFile | None = None
    dial_timeout: PositiveDuration = 2.0
    request_timeout: PositiveDuration = 5.0
    # The sidecar's own member, normalized like the endpoint URLs and one of them.
    local_member: MemberURL | None = None
    discover: bool = True
    probes: Annotated[RawProbes, PlainValidator(validate_probes)] = Field(default_factory=dict)

    @field_validator("local_member")
    @classmethod
    def _one_of_the_endpoints(cls, url: str | None, info: ValidationInfo) -> str | None:
        # Without valid endpoints the member may well be among them; one error is enough.
        urls = [e.url for e in info.data.get("endpoints", ())]
        if url is not None and urls and url not in urls:
            raise ValueError(
                f"{url!r} is not one of the cluster's endpoint urls ({', '.join(urls)})"
            )
        return url

    @classmethod
    def unknown(cls, key: object, allowed: list[str]) -> str:
        return _BACKUP_MOVED if key == "backup" else super().unknown(key, allowed)

    @classmethod
    def checks(cls, data: Mapping[str, Any]) -> list[InitErrorDetails]:
        found = []
        user, password = _is_set(data.get("username")), _is_set(data.get("password_file"))
        if user != password:
            given, missing = ("username", "password_file")[:: 1 if user else -1]
            found.append(problem((), f"{given} is set but {missing} is not"))
        tls = data.get("tls")
        if isinstance(tls, Mapping) and tls.get("insecure_skip_verify") is True:
            found.append(problem(("tls", "insecure_skip_verify"), _NO_SKIP_VERIFY))
        return found


# --------------------------------------------------------------------------- web, scrape

_POSITIVE_DURATION = DurationRule(positive=True)


def _member_timeout(value: object, info: ValidationInfo) -> float | Literal["auto"]:
    return "auto" if value == "auto" else _POSITIVE_DURATION.validate(value, info)


class ScrapeConfig(Section):
    """Budget and filters for proxying members' /metrics.

    ``metrics_allow``/``metrics_deny`` are meant for ``fullmatch`` on metric family names.
    """

    timeout: PositiveDuration = 10.0
    # Subtracted from Prometheus' scrape timeout header; zero is allowed.
    timeout_offset: Duration = 0.5
    # How long a scrape waits for one member (never beyond the budget). "auto": 5x the
    # member's slowest recent fetch, at least 1s (5s before its first answer); 250ms while
    # its last fetch timed out.
    member_timeout: Annotated[float | Literal["auto"], PlainValidator(_member_timeout)] = "auto"
    metrics_allow: Regex | None = None
    metrics_deny: Regex | None = None


class WebConfig(Section):
    listen_address: ListenAddress = ":9979"
    telemetry_path: TelemetryPath = "/metrics"
    # exporter-toolkit's web config file (TLS, basic auth): web/webconfig.py.
    config_file: ReadableFile | None = None
    # Bounds on the exporter's own HTTP connections (web/server.py). The idle timeout is
    # above the usual 1m scrape interval, so Prometheus keeps reusing its connection.
    max_connections: Annotated[int, Field(ge=1)] = 128
    # One client address holds at most this many: a flood from one address cannot take every
    # slot (its own oldest connection without a complete request makes room).
    max_connections_per_client: Annotated[int, Field(ge=1)] = 32
    read_header_timeout: PositiveDuration = 10.0
    idle_timeout: PositiveDuration = 120.0


# --------------------------------------------------------------------------- the file


@dataclass(frozen=True)
class Config:
    clusters: tuple[ClusterConfig, ...]
    web: WebConfig
    scrape: ScrapeConfig
    # Every registered probe has an entry, also the ones the YAML never mentions.
    probes: Mapping[str, ProbeConfig]
    key_labels: KeyLabels = "full"
    sensitive_prefixes: tuple[str, ...] = DEFAULT_SENSITIVE_PREFIXES
    # A YAML file of mixin values (config.libsonnet names, as `generate --values` takes) that
    # findings compare with; None: the mixin's defaults (report/thresholds.py).
    mixin_values: str | None = None
    log_level: LogLevel = "info"
    log_format: LogFormat = "logfmt"
    # Clusters with a ``probes:`` section of their own -> their probes, resolved.
    cluster_probes: Mapping[str, Mapping[str, ProbeConfig]] = field(default_factory=dict)
    # This replica's shard (flags only: every replica reads the same file); the clusters it
    # watches are clusters_of_shard(clusters, shard.index, shard.total).
    shard: Shard = field(default_factory=Shard)

    def probes_for(self, cluster: str) -> Mapping[str, ProbeConfig]:
        """The probes' settings for one cluster: ``probes`` with the cluster's overrides."""
        return self.cluster_probes.get(cluster, self.probes)


class LogSection(Section):
    level: LogLevel = "info"
    format: LogFormat = "logfmt"


class InspectionSection(Section):
    # The defaults of every probe's interval and timeout; unset, each probe has its own.
    interval: PositiveDuration | None = None
    timeout: PositiveDuration | None = None
    key_labels: KeyLabels = "full"
    # Keys under these prefixes are labelled by hash even with key_labels `full`.
    sensitive_prefixes: tuple[NonEmptyStr, ...] = DEFAULT_SENSITIVE_PREFIXES
    # The mixin values file (`generate --values`) whose thresholds findings use.
    mixin_values: NonEmptyStr | None = None
    probes: Annotated[RawProbes, PlainValidator(validate_probes)] = Field(default_factory=dict)


class Document(Section):
    """The whole file. ``model_validate`` needs ``context={"specs": <probe registry>}``."""

    log: LogSection = Field(default_factory=LogSection)
    web: WebConfig = Field(default_factory=WebConfig)
    scrape: ScrapeConfig = Field(default_factory=ScrapeConfig)
    inspection: InspectionSection = Field(default_factory=InspectionSection)
    clusters: Annotated[tuple[ClusterConfig, ...], non_empty("cluster")] = Field(
        default=(), validate_default=True
    )

    @classmethod
    def checks(cls, data: Mapping[str, Any]) -> list[InitErrorDetails]:
        # On the raw names, so that a duplicate is reported even if a cluster has other
        # problems too.
        clusters = data.get("clusters")
        if not isinstance(clusters, tuple):
            return []
        names = [c.get("name") if isinstance(c, Mapping) else None for c in clusters]
        found = duplicates([n or None for n in names], "cluster name", "clusters", ("name",))
        for error in found:
            error["loc"] = ("clusters", *error["loc"])
        return found

    def to_config(self, specs: Mapping[str, ProbeSpecLike]) -> Config:
        """Raises ValidationError where a cluster's probe overrides break the probe's checks."""
        section = self.inspection
        own = [(c.name, c.probes) for c in self.clusters]
        probes, per_cluster = resolve_probes(
            specs, section.probes, section.interval, section.timeout, own
        )
        return Config(
            clusters=self.clusters,
            web=self.web,
            scrape=self.scrape,
            probes=probes,
            key_labels=self.inspection.key_labels,
            sensitive_prefixes=self.inspection.sensitive_prefixes,
            mixin_values=self.inspection.mixin_values,
            log_level=self.log.level,
            log_format=self.log.format,
            cluster_probes=per_cluster,
        )
