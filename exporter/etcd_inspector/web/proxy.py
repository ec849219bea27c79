"""Members' /metrics text -> metric families with `cluster` and `member` labels (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

ADDED_LABELS = ("cluster", "member")


class MalformedMetrics(ValueError):
    pass


def wanted(
    name: str, kind: str, allow: re.Pattern[str] | None, deny: re.Pattern[str] | None
) -> bool:
    # The parser strips `_total` from counter family names; users write the exposed name.
    names = (name, f"{name}_total") if kind == "counter" else (name,)
    if allow is not None and not any(allow.fullmatch(n) for n in names):
        return False
    return not (deny is not None and any(deny.fullmatch(n) for n in names))


def relabel(
    text: str,
    cluster: str,
    member: str,
    allow: re.Pattern[str] | None = None,
    deny: re.Pattern[str] | None = None,
) -> list[Metric]:
    """Parse one member's exposition and add cluster/member to every sample.

    A label the member already carries under one of our names is kept as `exported_<name>`,
    the way Prometheus keeps a target's conflicting labels.
    """
    out: list[Metric] = []
    try:
        for fam in text_string_to_metric_families(text):
            if not wanted(fam.name, fam.type, allow, deny):
                continue
            new = Metric(fam.name, fam.documentation, fam.type, fam.unit)
            for s in fam.samples:
                labels = {"cluster": cluster, "member": member}
                for k, v in s.labels.items():
                    labels[f"exported_{k}" if k in ADDED_LABELS else k] = v
                new.samples.append(Sample(s.name, labels, s.value, s.timestamp))
            out.append(new)
    except Exception as err:  # the parser raises ValueError, TypeError, IndexError...
        raise MalformedMetrics(f"{type(err).__name__}: {err}") from None
    return out


def merge_families(groups: Iterable[Iterable[Metric]]) -> tuple[list[Metric], list[str]]:
    """One family per name, samples of all sources together, as the exposition format needs.

    A name that comes with two different types (our process_* gauge vs. a member's counter,
    say) keeps the first one; the conflicting name is reported, not exposed twice.
    """
    merged: dict[str, Metric] = {}
    conflicts: list[str] = []
    for group in groups:
        for fam in group:
            have = merged.get(fam.name)
            if have is None:
                copy = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                copy.samples = list(fam.samples)
                merged[fam.name] = copy
            elif have.type != fam.type:
                conflicts.append(fam.name)
            else:
                have.samples.extend(fam.samples)
    return list(merged.values()), conflicts
