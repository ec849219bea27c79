"""The probe registry. Adding a probe: a new module with a SPEC, and one line here.

The order is the report's: sections of `inspect`, the JSON document and the status page follow it.
"""

from __future__ import annotations

from etcd_inspector.probes.backup import SPEC as BACKUP
from etcd_inspector.probes.base import ProbeSpec
from etcd_inspector.probes.bigvalue import SPEC as BIGVALUE
from etcd_inspector.probes.certs import SPEC as CERTS
from etcd_inspector.probes.consistency import SPEC as CONSISTENCY
from etcd_inspector.probes.hotkeys import SPEC as HOTKEYS
from etcd_inspector.probes.leases import SPEC as LEASES
from etcd_inspector.probes.performance import SPEC as PERFORMANCE
from etcd_inspector.probes.quota import SPEC as QUOTA
from etcd_inspector.probes.status import SPEC as STATUS

REGISTRY: dict[str, ProbeSpec] = {
    spec.name: spec
    for spec in (
        STATUS,
        PERFORMANCE,
        CONSISTENCY,
        QUOTA,
        LEASES,
        BIGVALUE,
        HOTKEYS,
        CERTS,
        BACKUP,
    )
}

__all__ = ["REGISTRY", "ProbeSpec"]
