"""The YAML document: the sections that are not themselves configuration objects.

``log`` and ``inspection`` are flattened into ``Config`` (``log_level``, ``probes``...),
so they have models of their own; every other section is validated straight into the
dataclass the exporter reads (``schema.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import InitErrorDetails

from .durations import PositiveDuration
from .errors import problem
from .fields import LIST, NonEmptyStr, choice, non_empty, validate_section
from .probe_options import validate_probes
from .schema import ClusterConfig, Config, ProbeConfig, ScrapeConfig, WebConfig

LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("logfmt", "json")
KEY_LABEL_MODES = ("full", "prefix", "hash")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="wrap")
    @classmethod
    def _section(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return validate_section(cls, data, handler, checks=cls._checks)

    @classmethod
    def _checks(cls, data: Mapping[str, Any]) -> list[InitErrorDetails]:
        return []


class LogSection(_Section):
    level: Annotated[str, choice(LOG_LEVELS)] = Config.log_level
    format: Annotated[str, choice(LOG_FORMATS)] = Config.log_format


class InspectionSection(_Section):
    # The defaults of every probe's interval and timeout; unset, each probe has its own.
    interval: PositiveDuration | None = None
    timeout: PositiveDuration | None = None
    key_labels: Annotated[str, choice(KEY_LABEL_MODES)] = Config.key_labels
    # Keys under these prefixes are labelled by hash even with key_labels `full`.
    sensitive_prefixes: Annotated[tuple[NonEmptyStr, ...], LIST] = Config.sensitive_prefixes
    # The mixin values file (`generate --values`) whose thresholds findings use.
    mixin_values: NonEmptyStr | None = None
    # Validated also when absent: every registered probe gets an entry.
    probes: Annotated[dict[str, ProbeConfig], PlainValidator(validate_probes)] = Field(
        default_factory=dict, validate_default=True
    )


class Document(_Section):
    """The whole file. ``model_validate`` needs ``context={"specs": <probe registry>}``."""

    log: LogSection = Field(default_factory=LogSection)
    web: WebConfig = Field(default_factory=WebConfig)
    scrape: ScrapeConfig = Field(default_factory=ScrapeConfig)
    # A default of {} validated like any input, so that the probes get their defaults.
    inspection: InspectionSection = Field(
        default_factory=dict,
        validate_default=True,
    )
    clusters: Annotated[tuple[ClusterConfig, ...], LIST, non_empty("cluster")] = Field(
        default=(), validate_default=True
    )

    @classmethod
    def _checks(cls, data: Mapping[str, Any]) -> list[InitErrorDetails]:
        # On the raw names, so that a duplicate is reported even if a cluster has other
        # problems too.
        clusters = data.get("clusters")
        if not isinstance(clusters, list | tuple):
            return []
        first: dict[str, int] = {}
        errors = []
        for i, item in enumerate(clusters):
            name = item.get("name") if isinstance(item, Mapping) else None
            if not isinstance(name, str) or not name:
                continue
            if name in first:
                text = f"duplicate cluster name {name!r} (also clusters[{first[name]}])"
                errors.append(problem(("clusters", i, "name"), text))
            else:
                first[name] = i
        return errors

    def to_config(self) -> Config:
        return Config(
            clusters=self.clusters,
            web=self.web,
            scrape=self.scrape,
            probes=self.inspection.probes,
            key_labels=self.inspection.key_labels,
            sensitive_prefixes=self.inspection.sensitive_prefixes,
            mixin_values=self.inspection.mixin_values,
            log_level=self.log.level,
            log_format=self.log.format,
        )
