"""The probe registry. Adding a probe: a new module with a SPEC, and one line here."""

from __future__ import annotations

from .base import ProbeSpec
from .bigvalue import SPEC as BIGVALUE
from .consistency import SPEC as CONSISTENCY
from .hotkeys import SPEC as HOTKEYS
from .quota import SPEC as QUOTA
from .status import SPEC as STATUS

REGISTRY: dict[str, ProbeSpec] = {
    spec.name: spec
    for spec in (
        STATUS,
        CONSISTENCY,
        QUOTA,
        HOTKEYS,
        BIGVALUE,
    )
}

__all__ = ["REGISTRY", "ProbeSpec"]
