"""The probe registry. Adding a probe: a new module with a SPEC, and one line here."""

from __future__ import annotations

from .base import ProbeSpec
from .status import SPEC as STATUS

REGISTRY: dict[str, ProbeSpec] = {spec.name: spec for spec in (STATUS,)}

__all__ = ["REGISTRY", "ProbeSpec"]
