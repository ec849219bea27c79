"""The configuration objects the exporter reads, which are also the schema of their YAML.

They are stdlib frozen dataclasses: constructing one in code validates nothing (tests and
the CLI build them directly), while pydantic validates YAML input into them through the
``Annotated`` metadata of their fields (see ``fields.py``), their ``__pydantic_config__``
and their ``mode="wrap"`` validators (checks that involve several keys). Each default is
written here, once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from etcd_inspector.etcd.tls import check_files
from etcd_inspector.etcd.types import TLSFiles
from etcd_inspector.keyspace.keys import DEFAULT_SENSITIVE_PREFIXES

from .durations import Duration, DurationRule, PositiveDuration
from .errors import problem, problems, reraise, type_name
from .fields import (
    LIST,
    ClientURL,
    ClusterName,
    ListenAddress,
    MemberURL,
    MetricsURL,
    NonEmptyStr,
    ReadableDir,
    ReadableFile,
    Regex,
    TelemetryPath,
    as_list,
    client_url,
    non_empty,
    validate_section,
)

_SECTION = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- TLS


def _tls_pairs(data: Mapping[str, Any]) -> list[InitErrorDetails]:
    cert, key = _is_set(data.get("cert_file")), _is_set(data.get("key_file"))
    if cert and not key:
        return [problem((), "cert_file is set but key_file is not (a client cert needs both)")]
    if key and not cert:
        return [problem((), "key_file is set but cert_file is not (a client cert needs both)")]
    files = [
        data.get(k) if _is_set(data.get(k)) else None for k in ("ca_file", "cert_file", "key_file")
    ]
    if any(f is not None and not os.path.isfile(f) for f in files):
        return []  # the missing file is reported on its own key
    # Loaded as the client will load them: a file that is not PEM, or a key that does not
    # match its certificate, is one line here rather than a traceback at the first call.
    found = check_files(TLSFiles(*files))
    return [problem((), message) for message in found]


# A Kubernetes TLS Secret mounted as a directory: these names, where present.
TLS_DIR_FILES = {"ca_file": "ca.crt", "cert_file": "tls.crt", "key_file": "tls.key"}


def _from_dir(data: object) -> object:
    """`dir: /etc/etcd/pki` stands for the files of a mounted Secret that the section does not
    name itself."""
    if not isinstance(data, Mapping) or not isinstance(data.get("dir"), str):
        return data
    directory = data["dir"]
    filled = dict(data)
    for key, name in TLS_DIR_FILES.items():
        path = os.path.join(directory, name)
        if filled.get(key) is None and os.path.isfile(path):
            filled[key] = path
    return filled


def _is_set(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


@dataclass(frozen=True)
class TLSConfig:
    __pydantic_config__: ClassVar[ConfigDict] = _SECTION

    ca_file: ReadableFile | None = None
    cert_file: ReadableFile | None = None
    key_file: ReadableFile | None = None
    server_name: NonEmptyStr | None = None
    insecure_skip_verify: StrictBool = False
    # A directory holding ca.crt, tls.crt and tls.key (a mounted Kubernetes Secret); files
    # named explicitly win.
    dir: ReadableDir | None = None

    @property
    def enabled(self) -> bool:
        """Whether a custom TLS context is needed (https with system CAs needs none)."""
        return bool(self.ca_file or self.cert_file or self.key_file or self.insecure_skip_verify)

    @model_validator(mode="wrap")
    @classmethod
    def _section(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return validate_section(cls, _from_dir(data), handler, checks=_tls_pairs)


# --------------------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class EndpointConfig:
    url: str
    metrics_url: str


@dataclass(frozen=True)
class _EndpointSection:
    """The mapping form of an endpoint; ``metrics_url`` defaults to ``url`` + /metrics."""

    __pydantic_config__: ClassVar[ConfigDict] = _SECTION

    url: ClientURL
    metrics_url: MetricsURL | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _section(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return validate_section(cls, data, handler)


_ENDPOINT_ADAPTER = TypeAdapter(_EndpointSection)


def _endpoint(item: object) -> EndpointConfig:
    """An endpoint is a client URL string or a mapping with url and metrics_url."""
    if isinstance(item, str):
        url = client_url(item)
        return EndpointConfig(url, f"{url}/metrics")
    if not isinstance(item, Mapping):
        raise ValueError(
            f"expected a URL string or a mapping with url/metrics_url, got {type_name(item)}"
        )
    try:
        section = _ENDPOINT_ADAPTER.validate_python(item)
    except ValidationError as e:
        # Raised again so that pydantic places the errors below this list item.
        raise problems("endpoint", [reraise(err) for err in e.errors()]) from None
    return EndpointConfig(section.url, section.metrics_url or f"{section.url}/metrics")


def _distinct_urls(endpoints: tuple[EndpointConfig, ...]) -> tuple[EndpointConfig, ...]:
    first: dict[str, int] = {}
    errors = []
    for i, endpoint in enumerate(endpoints):
        if endpoint.url in first:
            errors.append(
                problem(
                    (i,),
                    f"duplicate endpoint {endpoint.url!r} "
                    f"(same as endpoints[{first[endpoint.url]}])",
                )
            )
        else:
            first[endpoint.url] = i
    if errors:
        raise problems("endpoints", errors)
    return endpoints


def _endpoint_list(value: object) -> object:
    # ``endpoints: null`` is an empty list here ("at least one..."), not a missing key.
    return as_list(() if value is None else value)


Endpoints = Annotated[
    tuple[Annotated[EndpointConfig, PlainValidator(_endpoint)], ...],
    BeforeValidator(_endpoint_list),
    non_empty("endpoint"),
    AfterValidator(_distinct_urls),
]


# --------------------------------------------------------------------------- backups


def _distinct_locations(locations: tuple[str, ...]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    errors = []
    for i, location in enumerate(locations):
        if location in seen:
            text = f"duplicate location {location!r} (same as [{seen[location]}])"
            errors.append(problem((i,), text))
        else:
            seen[location] = i
    if errors:
        raise problems("locations", errors)
    return locations


@dataclass(frozen=True)
class BackupConfig:
    """Where a cluster's snapshots are kept, and how old the newest may be (the backup probe).

    A location is a local directory (a mounted volume); one that does not exist is a finding
    at run time, not a configuration error: a volume may be mounted after the exporter starts.
    """

    __pydantic_config__: ClassVar[ConfigDict] = _SECTION

    locations: Annotated[
        tuple[NonEmptyStr, ...], LIST, non_empty("location"), AfterValidator(_distinct_locations)
    ]
    max_age: PositiveDuration = 3600.0

    @model_validator(mode="wrap")
    @classmethod
    def _section(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return validate_section(cls, data, handler, keep_null=("locations",))


# --------------------------------------------------------------------------- clusters


def _cluster_checks(data: Mapping[str, Any]) -> list[InitErrorDetails]:
    found = []
    user, password = _is_set(data.get("username")), _is_set(data.get("password_file"))
    if user and not password:
        found.append(problem((), "username is set but password_file is not"))
    if password and not user:
        found.append(problem((), "password_file is set but username is not"))
    tls = data.get("tls")
    if isinstance(tls, Mapping) and tls.get("insecure_skip_verify") is True:
        found.append(
            problem(
                ("tls", "insecure_skip_verify"),
                "not supported for etcd's gRPC API (gRPC cannot skip certificate verification); "
                "give tls.ca_file, and tls.server_name if the certificate names another host "
                "(metrics_tls.insecure_skip_verify works for https metrics URLs)",
            )
        )
    return found


@dataclass(frozen=True)
class ClusterConfig:
    """One etcd cluster.

    ``metrics_tls`` is ``None`` when the YAML has no ``metrics_tls`` section; that means
    "use ``tls`` for https metrics URLs too". It is left unresolved so consumers can tell
    an explicit metrics TLS setup from the inherited one.
    ``password_file`` is only checked for readability here; its content is read at every
    login (etcd/auth.py), so a rotated password needs no restart.
    ``discover``: also inspect the members the member list names that no endpoint reaches.
    """

    __pydantic_config__: ClassVar[ConfigDict] = _SECTION

    name: ClusterName
    endpoints: Endpoints
    tls: TLSConfig = field(default_factory=TLSConfig)
    metrics_tls: TLSConfig | None = None
    username: NonEmptyStr | None = None
    password_file: ReadableFile | None = None
    dial_timeout: PositiveDuration = 2.0
    request_timeout: PositiveDuration = 5.0
    # The sidecar's own member, normalized like the endpoint URLs and one of them.
    local_member: MemberURL | None = None
    discover: StrictBool = True
    backup: BackupConfig | None = None

    @field_validator("local_member")
    @classmethod
    def _one_of_the_endpoints(cls, url: str | None, info: ValidationInfo) -> str | None:
        # Without valid endpoints the member may well be among them; one error is enough.
        endpoints: tuple[EndpointConfig, ...] = info.data.get("endpoints", ())
        urls = [e.url for e in endpoints]
        if url is not None and urls and url not in urls:
            raise ValueError(
                f"{url!r} is not one of the cluster's endpoint urls ({', '.join(urls)})"
            )
        return url

    @model_validator(mode="wrap")
    @classmethod
    def _section(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return validate_section(
            cls, data, handler, keep_null=("endpoints",), checks=_cluster_checks
        )


# --------------------------------------------------------------------------- web, scrape


_POSITIVE_DURATION = DurationRule(positive=True)


def _member_timeout(value: object, info: ValidationInfo) -> float | Literal["auto"]:
    return "auto" if value == "auto" else _POSITIVE_DURATION.validate(value, info)


# "auto" or a positive duration.
MemberTimeout = Annotated[float | Literal["auto"], PlainValidator(_member_timeout)]


@dataclass(frozen=True)
class ScrapeConfig:
    """Budget and filters for proxying members' /metrics.

    ``metrics_allow``/``metrics_deny`` are meant for ``fullmatch`` on metric family names.
    """

    __pydantic_config__: ClassVar[ConfigDict] = _SECTION

    timeout: PositiveDuration = 10.0
    # Subtracted from Prometheus' scrape timeout header; zero is allowed.
    timeout_offset: Duration = 0.5
    # How long a scrape waits for one member (never beyond the budget). "auto": 5x the
    # member's slowest recent fetch, at least 1s (5s before its first answer); 250ms while
    # its last fetch timed out.
    member_timeout: MemberTimeout = "auto"
    metrics_allow: Regex | None = None
    metrics_deny: Regex | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _section(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return validate_section(cls, data, handler)


def _at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


@dataclass(frozen=True)
class WebConfig:
    __pydantic_config__: ClassVar[ConfigDict] = _SECTION

    listen_address: ListenAddress = ":9979"
    telemetry_path: TelemetryPath = "/metrics"
    # exporter-toolkit's web config file (TLS, basic auth): config/webconfig.py.
    config_file: ReadableFile | None = None
    # Bounds on the exporter's own HTTP connections (web/server.py). The idle timeout is
    # above the usual 1m scrape interval, so Prometheus keeps reusing its connection.
    max_connections: Annotated[StrictInt, AfterValidator(_at_least_one)] = 128
    read_header_timeout: PositiveDuration = 10.0
    idle_timeout: PositiveDuration = 120.0

    @model_validator(mode="wrap")
    @classmethod
    def _section(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return validate_section(cls, data, handler)


# --------------------------------------------------------------------------- probes, config


@dataclass(frozen=True)
class ProbeConfig:
    """One probe's settings after defaults: built by the loader, not read from YAML as is."""

    enabled: bool
    interval: float
    timeout: float
    options: Any  # an instance of the probe's ``options_type``


@dataclass(frozen=True)
class Config:
    clusters: tuple[ClusterConfig, ...]
    web: WebConfig
    scrape: ScrapeConfig
    # Every registered probe has an entry, also the ones the YAML never mentions.
    probes: Mapping[str, ProbeConfig]
    key_labels: str = "full"
    sensitive_prefixes: tuple[str, ...] = DEFAULT_SENSITIVE_PREFIXES
    # A YAML file of mixin values (config.libsonnet names, as `generate --values` takes) that
    # findings compare with; None: the mixin's defaults (report/thresholds.py).
    mixin_values: str | None = None
    log_level: str = "info"
    log_format: str = "logfmt"


class ProbeSpecLike(Protocol):
    """What the loader needs from a probe registry entry."""

    @property
    def name(self) -> str: ...

    @property
    def options_type(self) -> type: ...

    @property
    def default_enabled(self) -> bool: ...

    @property
    def default_interval(self) -> float: ...

    @property
    def default_timeout(self) -> float: ...
