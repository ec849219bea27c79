"""Benchmark 6: the scrape path against its physical limit, the members' own /metrics.

Peers, measured in the same run on the same real 3-member cluster:
- latency: an exporter scrape vs fetching the three members' /metrics concurrently (what the
  exporter must do at least), alternating, as Prometheus asks (OpenMetrics first, gzip);
- CPU per scrape: the exporter's user+system time per scrape vs what prometheus_client's parser
  and serializer (the old path) spend on the same three texts in this process;
- a frozen member (SIGSTOP) with a 10 s budget: every scrape's time;
- 20 and 50 concurrent scrapers: scrapes/s, p50/p99, non-200s, the exporter's RSS before/after,
  vs the same scrapers fetching the members directly;
- 10 clusters x 3 members in one exporter (ten cluster entries on the same three members: 30
  fetches and expositions per scrape) vs fetching the 30 URLs concurrently.

Standalone: .venv/bin/python bench/bench_scrape_path.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from common import (
    MEMBER_HEADERS,
    SCRAPE_HEADERS,
    Exporter,
    Row,
    log,
    markdown,
    mib,
    percentile,
    ratio,
    start_bench_cluster,
)


def exporter_config(endpoints: Sequence[str], port: int, clusters: int = 1) -> str:
    lines = ["log: {level: warn}", f"web: {{listen_address: '127.0.0.1:{port}'}}",
             "inspection:", "  probes:", "    bigvalue: {enabled: false}", "clusters:"]  # fmt: skip
    for i in range(clusters):
        lines += [f"  - name: c{i}", "    endpoints:"] + [f"      - {e}" for e in endpoints]
    return "\n".join(lines) + "\n"


def start_exporter(endpoints: Sequence[str], workdir: Path, clusters: int = 1) -> Exporter:
    exp = Exporter(endpoints, {}, workdir)
    exp.config.write_text(exporter_config(endpoints, exp.port, clusters))
    return exp  # started by `with`


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def get(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    """The HTTP status, or 0 when the connection was refused or reset: at 32 connections from
    one address (web.max_connections_per_client) the exporter refuses that client's next one
    unless an idle one can go, so 50 scrapers on one host see resets, counted as bad answers."""
    try:
        async with session.get(url, headers=headers) as resp:
            await resp.read()
            return resp.status
    except aiohttp.ClientError:
        return 0


async def timed(coro) -> float:
    t0 = time.perf_counter()
    await coro
    return time.perf_counter() - t0


async def raw_fetch(session: aiohttp.ClientSession, urls: Sequence[str]) -> None:
    statuses = await asyncio.gather(*(get(session, u, MEMBER_HEADERS) for u in urls))
    assert all(s == 200 for s in statuses), statuses


async def exporter_scrape(session: aiohttp.ClientSession, exp: Exporter) -> None:
    status = await get(session, exp.url + "/metrics", SCRAPE_HEADERS)
    assert status == 200, status


async def alternate(exp: Exporter, urls: Sequence[str], n: int) -> tuple[list[float], ...]:
    """n exporter scrapes and n raw concurrent fetches, alternating; plus the exporter's CPU."""
    ours, peer = [], []
    async with aiohttp.ClientSession() as session:
        for _ in range(5):  # warm: connections, the member's fetch history
            await exporter_scrape(session, exp)
            await raw_fetch(session, urls)
        cpu0 = cpu_seconds(exp.proc.pid)  # type: ignore[union-attr]
        for _ in range(n):
            ours.append(await timed(exporter_scrape(session, exp)))
            peer.append(await timed(raw_fetch(session, urls)))
            await asyncio.sleep(0.02)
        cpu = cpu_seconds(exp.proc.pid) - cpu0  # type: ignore[union-attr]
    return ours, peer, [cpu / n]


def old_path_cpu(texts: Sequence[str], reps: int = 5) -> float:
    """CPU seconds of prometheus_client's parse + serialize of the members' texts (old path)."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    class Families:
        def __init__(self, fams):
            self.fams = fams

        def collect(self):
            return self.fams

    t0 = time.process_time()
    for _ in range(reps):
        fams = [f for t in texts for f in text_string_to_metric_families(t)]
        generate_latest(Families(fams))  # type: ignore[arg-type]
    return (time.process_time() - t0) / reps


async def flood(url_sets: Sequence[Sequence[str]], scrapers: int, seconds: float, headers):
    """`scrapers` loops, each GETting all URLs of a set concurrently, for `seconds`."""
    latencies: list[float] = []
    bad = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.monotonic() + seconds

        async def loop() -> None:
            nonlocal bad
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                for urls in url_sets:
                    statuses = await asyncio.gather(*(get(session, u, headers) for u in urls))
                    bad += sum(1 for s in statuses if s != 200)
                latencies.append(time.perf_counter() - t0)

        started = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(scrapers)))
        wall = time.monotonic() - started
    return latencies, bad, wall


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def run(cluster, workdir: Path, quick: bool = False) -> list[Row]:
    bench = "6. scrape path"
    rows: list[Row] = []
    urls = [m.metrics_url for m in cluster.members]
    n = 40 if quick else 200
    flood_seconds = 5.0 if quick else 20.0
    peer_seconds = 5.0 if quick else 10.0
    with start_exporter(cluster.endpoints, workdir) as exp:
        time.sleep(1.0)
        ours, peer, (cpu,) = asyncio.run(alternate(exp, urls, n))
        p50, p99 = (percentile(ours, 0.5), percentile(peer, 0.5)), (
            percentile(ours, 0.99), percentile(peer, 0.99))  # fmt: skip
        log(f"scrape p50 {ms(p50[0])} vs raw {ms(p50[1])}; p99 {ms(p99[0])} vs {ms(p99[1])}")
        rows += [
            Row(bench, f"scrape p50, {n} scrapes (OpenMetrics, gzip)", ms(p50[0]), ms(p50[1]),
                ratio(*p50), "peer: the 3 members' /metrics fetched concurrently; target 1.5x"),
            Row(bench, f"scrape p99, {n} scrapes", ms(p99[0]), ms(p99[1]), ratio(*p99), ""),
        ]  # fmt: skip
        texts = []
        for u in urls:
            import urllib.request

            with urllib.request.urlopen(u, timeout=10) as r:
                texts.append(r.read().decode())
        old = old_path_cpu(texts)
        rows.append(
            Row(bench, "CPU per scrape (exporter user+system)", ms(cpu), ms(old), ratio(cpu, old),
                "peer: prometheus_client parse + serialize of the same 3 texts (the old path), "
                "in the bench process; ours includes background probes")
        )  # fmt: skip
        log(f"CPU per scrape {ms(cpu)} vs old path {ms(old)}")

        # A frozen member, a 10 s budget.
        frozen = cluster.member("m3")
        frozen.freeze()
        try:
            async def frozen_scrapes() -> list[float]:
                async with aiohttp.ClientSession() as session:
                    return [await timed(exporter_scrape(session, exp)) for _ in range(20)]

            times = asyncio.run(frozen_scrapes())
        finally:
            frozen.thaw()
        log(f"frozen member: max {ms(max(times))}, p50 {ms(percentile(times, 0.5))}")
        rows.append(
            Row(bench, "frozen member (SIGSTOP), 20 scrapes, 10 s budget: max / p50",
                f"{ms(max(times))} / {ms(percentile(times, 0.5))}", "10 s budget",
                ratio(max(times), 10.0),
                f"first {ms(times[0])}, then {ms(percentile(times[1:], 0.5))} (probe); "
                "target < 1.5 s each; before: 9.7 s")
        )  # fmt: skip
        time.sleep(3.0)  # m3 answers again; its next fetch clears the probe state

        rss_before = exp.rss()
        for scrapers in (20, 50):
            lat, bad, wall = asyncio.run(
                flood([[exp.url + "/metrics"]], scrapers, flood_seconds, SCRAPE_HEADERS)
            )
            plat, pbad, pwall = asyncio.run(flood([urls], scrapers, peer_seconds, MEMBER_HEADERS))
            rate, prate = len(lat) / wall, len(plat) / pwall
            log(f"{scrapers} scrapers: {rate:.1f}/s p50 {ms(percentile(lat, 0.5))} p99 "
                f"{ms(percentile(lat, 0.99))} bad {bad}; raw {prate:.1f}/s")  # fmt: skip
            rows += [
                Row(bench, f"{scrapers} concurrent scrapers, {flood_seconds:.0f} s: scrapes/s",
                    f"{rate:.1f}/s", f"{prate:.1f}/s", ratio(rate, prate),
                    f"{len(lat)} scrapes, {bad} not 200; peer: {scrapers} clients fetching the 3 "
                    f"members directly for {peer_seconds:.0f} s ({pbad} not 200)"),
                Row(bench, f"{scrapers} concurrent scrapers: p50 / p99",
                    f"{ms(percentile(lat, 0.5))} / {ms(percentile(lat, 0.99))}",
                    f"{ms(percentile(plat, 0.5))} / {ms(percentile(plat, 0.99))}",
                    ratio(percentile(lat, 0.99), percentile(plat, 0.99)),
                    "target (20): p99 < 1 s, all 200"),
            ]  # fmt: skip
            time.sleep(1.0)
        rss_after, peak = exp.rss(), exp.peak_rss()
        rows.append(
            Row(bench, "exporter RSS before / after the floods (peak)",
                f"{mib(rss_after)} ({mib(peak)})", mib(rss_before), ratio(rss_after, rss_before),
                "target: growth < 20%; before: 62 -> 110 MiB")
        )  # fmt: skip
        log(f"RSS {mib(rss_before)} -> {mib(rss_after)}, peak {mib(peak)}")

    with start_exporter(cluster.endpoints, workdir, clusters=10) as exp10:
        time.sleep(2.0)
        ours, peer, (cpu,) = asyncio.run(alternate(exp10, urls * 10, n // 2))
        p50 = (percentile(ours, 0.5), percentile(peer, 0.5))
        log(f"10x3: p50 {ms(p50[0])} vs raw {ms(p50[1])}")
        rows += [
            Row(bench, f"10 clusters x 3 members: scrape p50 / p99, {n // 2} scrapes",
                f"{ms(p50[0])} / {ms(percentile(ours, 0.99))}",
                f"{ms(p50[1])} / {ms(percentile(peer, 0.99))}", ratio(*p50),
                "10 cluster entries on the same 3 members; peer: the 30 URLs concurrently; "
                "target p50 < 250 ms"),
            Row(bench, "10 clusters x 3 members: CPU per scrape", ms(cpu), "", "",
                f"exporter RSS {mib(exp10.rss())}"),
        ]  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scrape-path-") as tmp:
        workdir = Path(tmp)
        cluster = start_bench_cluster(workdir / "etcd", binary=os.environ.get("ETCD_BIN"))
        try:
            rows = run(cluster, workdir, args.quick)
        finally:
            cluster.stop()
    print(markdown(rows))


if __name__ == "__main__":
    main()
