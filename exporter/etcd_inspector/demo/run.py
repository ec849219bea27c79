"""`etcd-inspector demo`: a local 3-member etcd cluster with sample data, the exporter on
localhost, and a runaway writer so the hot-key probe has something to find."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import signal
import sys
from pathlib import Path

from etcd_inspector.config import Config, parse_config
from etcd_inspector.demo.localcluster import ClusterStartError, start_cluster
from etcd_inspector.demo.sample_writer import SampleWriter
from etcd_inspector.demo.sampledata import HOT_KEY, load_sample_data
from etcd_inspector.errors import UsageError
from etcd_inspector.exitcodes import EXIT_ADDRESS, EXIT_ERROR, EXIT_OK
from etcd_inspector.logsetup import setup_logging
from etcd_inspector.probes import REGISTRY
from etcd_inspector.report.thresholds import HOT_KEY_WRITES_PER_SECOND
from etcd_inspector.web.address import parse_listen_address
from etcd_inspector.web.server import Listener, ServerLimits, bind, make_runner

# Well over the hot-key alert's threshold (report/thresholds.py), so the demo shows a hot key
# finding; paced on a schedule with a few writes in flight, so a slow put does not lower it.
HOT_WRITES_PER_SECOND = 2 * HOT_KEY_WRITES_PER_SECOND
MAX_WRITES_IN_FLIGHT = 8


async def _put_quietly(writer: SampleWriter, i: int) -> None:
    with contextlib.suppress(Exception):  # the demo cluster may be shutting down
        await writer.put(HOT_KEY, str(i).encode())


async def _runaway_writer(endpoint: str) -> None:
    writer = SampleWriter(endpoint)
    loop = asyncio.get_running_loop()
    in_flight: set[asyncio.Task[None]] = set()
    next_at = loop.time()
    try:
        i = 0
        while True:
            if len(in_flight) < MAX_WRITES_IN_FLIGHT:
                task = asyncio.create_task(_put_quietly(writer, i))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            i += 1
            next_at = max(next_at + 1 / HOT_WRITES_PER_SECOND, loop.time() - 1)
            await asyncio.sleep(max(0.0, next_at - loop.time()))
    finally:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        await writer.close()


def demo_config(endpoints: list[str], metrics_urls: list[str], listen: str) -> Config:
    return parse_config(
        {
            "web": {"listen_address": listen},
            "inspection": {"interval": "5s"},
            "clusters": [
                {
                    "name": "demo",
                    "endpoints": [
                        {"url": u, "metrics_url": m}
                        for u, m in zip(endpoints, metrics_urls, strict=True)
                    ],
                }
            ],
        },
        REGISTRY,
        source="demo",
    )


def inspector_command() -> str:
    """How to run etcd-inspector from a shell: the script next to this interpreter (the
    virtualenv's, usually not on PATH), else this interpreter with -m."""
    script = Path(sys.executable).with_name("etcd-inspector")
    if script.is_file():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m etcd_inspector"


def banner(listen: str, endpoints: list[str], data_dir: Path) -> str:
    host, port = parse_listen_address(listen)
    base = f"http://{host or '127.0.0.1'}:{port}"
    eps = ",".join(endpoints)
    inspect = f"{inspector_command()} inspect --etcd.cluster-name=demo --etcd.endpoints={eps}"
    return f"""
etcd-inspector demo is running.

  etcd cluster   3 members (m1, m2, m3): {eps}
  data           {data_dir}
  exporter       {base}/               status page: verdict, members, findings, runbooks
                 {base}/api/v1/status  the same as JSON
                 {base}/metrics        every member's metrics + the inspections
  try            curl -s {base}/metrics | grep -E '^etcd_inspector_(consistent|big_values|hot_key)'
                 {inspect}
                 {inspect} --watch=30s

A runaway writer rewrites {HOT_KEY.decode()} {HOT_WRITES_PER_SECOND:g} times a second.
Press Ctrl-C to stop; the cluster is removed on exit.
"""


async def _serve(args: argparse.Namespace) -> int:
    setup_logging("info", "logfmt")
    base_dir = Path(args.dir) if args.dir else None
    print("starting a 3-member etcd cluster on 127.0.0.1 ...", file=sys.stderr)
    try:
        cluster = start_cluster(3, base_dir=base_dir)
    except ClusterStartError as err:
        print(f"etcd-inspector demo: {err}", file=sys.stderr)
        return EXIT_ERROR
    runner = None
    listener: Listener | None = None
    writer_task = None
    try:
        print(f"writing {args.keys} sample keys ...", file=sys.stderr)
        await load_sample_data(cluster.endpoints[0], keys=args.keys)
        config = demo_config(
            cluster.endpoints, [m.metrics_url for m in cluster.members], args.listen_address
        )
        from etcd_inspector.web.app import create_app

        # Plain HTTP on loopback, with the same connection limits as `run`'s defaults.
        limits = ServerLimits.from_config(config.web)
        runner = make_runner(create_app(config), limits)
        await runner.setup()
        host, port = parse_listen_address(args.listen_address)
        listener = Listener(runner, host, port, limits)
        try:
            await listener.start()
        except OSError as err:  # taken since the check
            listener = None
            print(f"etcd-inspector demo: cannot listen on {args.listen_address}: "
                  f"{err.strerror or err}", file=sys.stderr)  # fmt: skip
            return EXIT_ADDRESS
        writer_task = asyncio.create_task(_runaway_writer(cluster.endpoints[0]))
        print(banner(args.listen_address, cluster.endpoints, cluster.base_dir), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.exit_after is not None:
            loop.call_later(args.exit_after, stop.set)
        await stop.wait()
        return EXIT_OK
    finally:
        if writer_task is not None:
            writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer_task
        if listener is not None:
            await listener.stop()
        if runner is not None:
            await runner.cleanup()
        cluster.stop()


def address_free(listen: str) -> str | None:
    """None when `listen` can be bound now, else why not (checked before the cluster starts,
    so a busy port costs no etcd start and stop)."""
    host, port = parse_listen_address(listen)
    try:
        sockets = bind(host, port)
    except OSError as err:
        return f"cannot listen on {listen}: {err.strerror or err}"
    for sock in sockets:
        sock.close()
    return None


def run_demo(args: argparse.Namespace) -> int:
    try:
        busy = address_free(args.listen_address)
    except UsageError as err:
        busy = str(err)
    if busy is not None:
        print(f"etcd-inspector demo: {busy} (choose another with --web.listen-address)",
              file=sys.stderr)  # fmt: skip
        return EXIT_ADDRESS
    return asyncio.run(_serve(args))
