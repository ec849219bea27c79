"""certs: when the certificates between the exporter and etcd expire.

Expired etcd certificates are a classic control-plane outage. For every https member this
probe reads the serving certificate from a TLS handshake (nothing is sent), and it reads the
client certificate the exporter presents from its file (rotated files are read again each run).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import model_validator

from etcd_inspector.config import Section
from etcd_inspector.etcd.deadline import call_timeout
from etcd_inspector.etcd.tls import file_not_after, serving_not_after
from etcd_inspector.probes.base import CACHED, Check, Probe, ProbeContext, ProbeSpec, ReportContext
from etcd_inspector.report.findings import Finding, Severity
from etcd_inspector.report.format import duration, rfc3339, table
from etcd_inspector.report.view import (
    Cell,
    Format,
    Line,
    Look,
    PageSection,
    Table,
    ViewInput,
    ViewPart,
    text,
)

DAY = 86400.0


class CertsOptions(Section):
    # A certificate expiring within this many days is a finding; unset, the alert's
    # (EtcdInspectorCertificateExpiry: the mixin's certificate_expiry_*_days, with the
    # operator's --mixin.values), so the finding and the alert agree.
    warning_days: float | None = None
    critical_days: float | None = None

    @model_validator(mode="after")
    def _check(self) -> CertsOptions:
        warning = self.warning_days if self.warning_days is not None else float("inf")
        if not 0 <= (self.critical_days or 0) <= warning:
            raise ValueError("need 0 <= critical_days <= warning_days")
        return self


@dataclass(frozen=True)
class CertExpiry:
    cert: str  # client | serving
    member: str  # the member serving it; "" for the exporter's client certificate
    source: str  # the file or the URL it was read from
    not_after: float  # seconds since the epoch


@dataclass(frozen=True)
class CertsResult:
    certs: tuple[CertExpiry, ...]
    taken_at: float


class CertsProbe(Probe[CertsOptions, CertsResult]):
    async def run(self, ctx: ProbeContext) -> CertsResult:
        found: list[CertExpiry] = []
        clients = list(ctx.members)
        files = clients[0].tls if clients else None
        if files is not None and files.cert_file:
            found.append(CertExpiry("client", "", files.cert_file, file_not_after(files.cert_file)))
        https = [c for c in clients if c.endpoint.startswith("https://")]
        expiries = await asyncio.gather(
            *(serving_not_after(c.endpoint, c.tls, call_timeout(c.request_timeout, 0.8))
              for c in https)
        )  # fmt: skip
        for client, expiry in zip(https, expiries, strict=True):
            if expiry is not None:
                name = ctx.member_name(client.endpoint)
                found.append(CertExpiry("serving", name, client.endpoint, expiry))
        return CertsResult(tuple(found), time.time())

    def metrics(self, cluster: str, result: CertsResult) -> Iterable[Metric]:
        fam = GaugeMetricFamily(
            "etcd_inspector_cert_expiry_timestamp_seconds",
            "When a certificate between the exporter and etcd expires: each member's serving "
            "certificate (cert=serving) and the exporter's client certificate (cert=client). "
            + CACHED,
            labels=["cluster", "member", "cert"],
        )
        for c in result.certs:
            fam.add_metric([cluster, c.member, c.cert], c.not_after)
        yield fam

    def findings(self, result: CertsResult, rc: ReportContext) -> Iterable[Finding]:
        o, t = self.options, rc.thresholds
        warning_days = (
            t.certificate_expiry_warning_days if o.warning_days is None else o.warning_days
        )
        critical_days = (
            t.certificate_expiry_critical_days if o.critical_days is None else o.critical_days
        )
        for c in result.certs:
            left = c.not_after - result.taken_at
            what = (
                f"member {c.member}'s serving certificate"
                if c.member
                else (f"the client certificate {c.source}")
            )
            if left <= 0:
                message, severity = f"{what} has expired", Severity.CRITICAL
            elif left <= critical_days * DAY:
                message, severity = f"{what} expires in {duration(left)}", Severity.CRITICAL
            elif left <= warning_days * DAY:
                message, severity = f"{what} expires in {duration(left)}", Severity.WARNING
            else:
                continue
            yield Finding(
                rc.cluster, "certificate_expiry", message, c.member or None, severity,
                subject=c.source, value=c.not_after,
                threshold=result.taken_at + warning_days * DAY,
            )  # fmt: skip

    def report_json(self, result: CertsResult | None, rc: ReportContext) -> dict[str, Any]:
        if result is None:
            return {"certificates": None}
        return {
            "certificates": [
                {
                    "cert": c.cert,
                    "member": c.member or None,
                    "source": c.source,
                    "not_after": rfc3339(c.not_after),
                    "seconds_left": round(c.not_after - result.taken_at),
                }
                for c in result.certs
            ]
        }

    def report_text(self, result: CertsResult | None, rc: ReportContext) -> list[str]:
        if result is None:
            return []
        if not result.certs:
            return ["Certificates: none (plain-text etcd)"]
        rows = [
            [c.cert, c.member or "-", rfc3339(c.not_after)[:10],
             duration(max(0.0, c.not_after - result.taken_at)), c.source]
            for c in result.certs
        ]  # fmt: skip
        return ["Certificates", *table(["CERT", "MEMBER", "EXPIRES", "LEFT", "FROM"], rows)]


def certificates_view(v: ViewInput) -> list[ViewPart]:
    """Each certificate with its expiry; the ones a finding names in red."""
    certs = v.doc.get("certificates")
    if certs is None:
        return []
    if not certs:
        none = text("none: etcd is plain-text, there is no certificate", Look.MUTED)
        return [PageSection("Certificates", (Line("certificates", (none,)),))]
    expiring = {
        f.get("subject") for f in v.doc.get("findings") or () if f["check"] == "certificate_expiry"
    }
    rows = []
    for c in certs:
        look = Look.BAD if c["source"] in expiring else Look.GOOD
        left = c["seconds_left"]
        rows.append((
            text(c["cert"], Look.STRONG), text(c["member"]),
            Cell(c["not_after"], Format.DATE, look),
            Cell(left, Format.SECONDS, look) if left > 0 else text("expired", Look.BAD),
            text(c["source"], Look.CODE),
        ))  # fmt: skip
    headers = ("certificate", "member", "expires", "left", "from")
    return [PageSection("Certificates", (Table("certificates", headers, tuple(rows)),))]


SPEC = ProbeSpec(
    name="certs",
    probe_type=CertsProbe,
    description="Expiry of each member's serving certificate and of the exporter's client "
    "certificate.",
    options_type=CertsOptions,
    default_interval=300.0,
    default_timeout=20.0,
    title="Certificates",
    view=certificates_view,
    checks=(
        Check(
            "certificate_expiry",
            "EtcdInspectorCertificateExpiry",
            Format.DATE,
            thresholds=("certificate_expiry_warning_days", "certificate_expiry_critical_days"),
        ),
    ),
    stale_seconds=3600,
)
