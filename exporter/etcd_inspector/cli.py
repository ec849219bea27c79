"""Command line: `etcd-inspector run|inspect|generate|drill|demo`, Prometheus-style flag names.

Exit codes (exitcodes.py): 0 fine, 1 findings (inspect), 2 bad configuration or could not
inspect, 3 cannot listen on the address, 4 cannot write the output; every one of them with one
line on stderr naming the cause, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from etcd_inspector import __version__
from etcd_inspector.backup.arguments import add_snapshot_arguments
from etcd_inspector.config import Config, ConfigError, load_config_file, merge_raw, parse_config
from etcd_inspector.drill.arguments import add_drill_arguments
from etcd_inspector.errors import UsageError
from etcd_inspector.exitcodes import (
    EXIT_ADDRESS,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT,
)
from etcd_inspector.flags import add_etcd_flags, add_shard_flags, flag_overrides, shard_from_args
from etcd_inspector.probes import REGISTRY
from etcd_inspector.report.thresholds import ThresholdsError, load_thresholds
from etcd_inspector.web.address import parse_listen_address

log = logging.getLogger(__name__)

__all__ = ["UsageError", "build_parser", "flag_overrides", "load_config", "main",
           "parse_listen_address"]  # fmt: skip


def load_config(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Config:
    raw: dict[str, Any] = {}
    source = "flags"
    if args.config_file:
        raw = load_config_file(args.config_file, REGISTRY) or {}
        source = args.config_file
    merged = merge_raw(merge_raw(raw, flag_overrides(args)), extra or {})
    if not merged.get("clusters") and not args.config_file:
        raise UsageError(
            "no etcd cluster to watch: give --etcd.endpoints=URL[,URL...] "
            "or --config.file=FILE with a clusters: list (see --help)"
        )
    config = parse_config(merged, REGISTRY, source=source)
    config = dataclasses.replace(config, shard=shard_from_args(args))
    try:  # read once here so that a bad values file is one line at start
        load_thresholds(config.mixin_values)
    except ThresholdsError as err:
        raise UsageError(f"--mixin.values: {err}") from err
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from etcd_inspector.web.webconfig import WebConfigError, load_web_config

    config = load_config(args)
    web_file = None
    if config.web.config_file:
        try:
            web_file = load_web_config(config.web.config_file)
        except WebConfigError as err:
            for line in err.lines():
                print(f"etcd-inspector: {line}", file=sys.stderr)
            return EXIT_ERROR
    if args.config_check:
        code = check_config(args, config)
        if code == EXIT_OK and web_file is not None:
            print(f"{config.web.config_file}: web configuration OK ({web_file.describe()})")
        return code
    import asyncio

    from etcd_inspector.logsetup import setup_logging
    from etcd_inspector.web.app import create_app
    from etcd_inspector.web.server import ServerLimits, serve

    setup_logging(config.log_level, config.log_format)
    host, port = parse_listen_address(config.web.listen_address)
    log.info(
        "starting etcd-inspector",
        extra={"version": __version__, "address": config.web.listen_address,
               "clusters": ",".join(c.name for c in config.clusters)},
    )  # fmt: skip
    limits = ServerLimits.from_config(config.web)
    try:
        # SIGHUP and POST /-/reload read the files and flags again (runtime/reload.py).
        app = create_app(config, load=lambda: load_config(args), handle_sighup=True)
        asyncio.run(serve(app, host, port, limits, web_file))
    except OSError as err:  # the address is taken, not ours, or its host does not resolve
        print(f"etcd-inspector: cannot listen on {config.web.listen_address}: "
              f"{err.strerror or err}", file=sys.stderr)  # fmt: skip
        return EXIT_ADDRESS
    return EXIT_OK


def check_config(args: argparse.Namespace, config: Config) -> int:
    """The file and flags are valid; then a TLS handshake with every endpoint."""
    import asyncio

    from etcd_inspector.runtime.preflight import check_connections

    errors, warnings = asyncio.run(check_connections(config))
    for line in warnings:
        print(f"etcd-inspector: warning: {line}", file=sys.stderr)
    for line in errors:
        print(f"etcd-inspector: {line}", file=sys.stderr)
    if errors:
        return EXIT_ERROR
    print(f"{args.config_file or 'flags'}: configuration OK ({len(config.clusters)} cluster(s))")
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from etcd_inspector.inspect import run_inspect

    return run_inspect(args, load_config(args))


def cmd_generate(args: argparse.Namespace) -> int:
    from etcd_inspector.mixin import MixinError, generate

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"etcd-inspector generate: --out {args.out} is not a directory", file=sys.stderr)
        return EXIT_OUTPUT
    try:
        out.mkdir(parents=True, exist_ok=True)  # a bad --out fails before seconds of jsonnet
        written = generate(out, Path(args.values) if args.values else None)
    except MixinError as err:
        print(f"etcd-inspector generate: {err}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as err:  # --out is a file, or not writable
        where = err.filename or args.out
        print(f"etcd-inspector generate: cannot write {where}: {err.strerror or err} "
              f"(--out must be a directory you can write to)", file=sys.stderr)  # fmt: skip
        return EXIT_OUTPUT
    for path in written:
        print(path)
    return EXIT_OK


def cmd_snapshot(args: argparse.Namespace) -> int:
    from etcd_inspector.snapshot import run_snapshot

    return run_snapshot(args, load_config(args))


def cmd_drill(args: argparse.Namespace) -> int:
    from etcd_inspector.drill.run import run_drill

    return run_drill(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from etcd_inspector.demo.run import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etcd-inspector",
        description="Prometheus exporter and inspector for etcd clusters: proxies every member's "
        "/metrics with cluster/member labels and inspects consistency, slow disks and peers, "
        "big values, hot keys, leases, quota headroom and backups in the background.",
    )
    parser.add_argument("--version", action="version", version=f"etcd-inspector {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="Run the exporter (long-running).",
        description="Run the exporter: serve /metrics, run probes in the background.",
    )
    add_etcd_flags(run)
    web_group = run.add_argument_group("web")
    web_group.add_argument(
        "--web.listen-address",
        dest="listen_address",
        metavar="[HOST]:PORT",
        help="Address to listen on (default: :9979).",
    )
    web_group.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        metavar="PATH",
        help="Path under which to expose metrics (default: /metrics).",
    )
    web_group.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="exporter-toolkit web configuration file: TLS and basic auth "
        "(see README: Securing the endpoint).",
    )
    web_group.add_argument(
        "--web.max-connections",
        dest="max_connections",
        type=int,
        metavar="N",
        help="Open connections at most; at the cap the oldest one without a complete request "
        "makes room (default: 128).",
    )
    web_group.add_argument(
        "--web.max-connections-per-client",
        dest="max_connections_per_client",
        type=int,
        metavar="N",
        help="Open connections from one client address at most (default: 32).",
    )
    web_group.add_argument(
        "--web.read-header-timeout",
        dest="read_header_timeout",
        metavar="DURATION",
        help="A new connection must finish its TLS handshake and send its first request's "
        "headers within this (default: 10s).",
    )
    web_group.add_argument(
        "--web.idle-timeout",
        dest="idle_timeout",
        metavar="DURATION",
        help="Close a kept-alive connection whose next request has not arrived within this "
        "(default: 2m).",
    )
    add_shard_flags(run)
    run.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="Validate the configuration and exit (0 valid, 2 invalid).",
    )
    run.set_defaults(func=cmd_run)

    insp = sub.add_parser(
        "inspect",
        help="Inspect a cluster once and print a report.",
        description="Run the probes once and report. Exit 0 all clear, "
        "1 findings over thresholds, 2 could not inspect.",
    )
    add_etcd_flags(insp)
    insp.add_argument(
        "--output", choices=["text", "json"], default="text", help="Report format (default: text)."
    )
    insp.add_argument(
        "--watch",
        dest="watch_seconds",
        metavar="DURATION",
        default=None,
        help="Also watch writes for this long to find hot keys, e.g. 30s (opt-in).",
    )
    insp.add_argument(
        "--probes",
        dest="probes",
        metavar="LIST",
        default=None,
        help="Comma-separated probes to run, e.g. status,quota (the status probe always runs; "
        "default: every probe the configuration enables).",
    )
    insp.add_argument(
        "--baseline",
        dest="baseline",
        metavar="BEFORE.json",
        default=None,
        help="Compare with a report saved by `inspect --output json` (before a change) and "
        "list what changed; then exit 1 only when something got worse.",
    )
    insp.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="Do not show scan progress on the terminal.",
    )
    insp.set_defaults(func=cmd_inspect)

    snap = sub.add_parser(
        "snapshot",
        help="Save a verified etcd snapshot into a directory or an S3 bucket (once, or "
        "--every DURATION).",
        description="Stream a snapshot from a healthy member (a follower when there is one) "
        "through Maintenance.Snapshot, verify etcd's SHA-256 and the bbolt file, fsync, and "
        "rename it to <cluster>-<UTC time>-r<revision>.db; or, with --out s3://BUCKET/PREFIX, "
        "upload it in parts and publish <cluster>-<UTC time>.db with its .sha256 once etcd's "
        "SHA-256 matched. With auth on, Maintenance.Snapshot needs a user with the root role "
        "(--etcd.username). Exit 0 written, 2 usage, 3 bad destination, 4 no space left, "
        "5 etcd failed, 6 snapshot not whole, 7 no such bucket, 8 access denied, "
        "9 credentials missing or rejected, 10 credentials expired, 11 endpoint unreachable, "
        "12 connection broke mid-upload.",
    )
    add_etcd_flags(snap)
    add_snapshot_arguments(snap)
    snap.set_defaults(func=cmd_snapshot)

    gen = sub.add_parser(
        "generate",
        help="Render rules, dashboards and manifests.",
        description="Render the monitoring mixin: Prometheus rules, Grafana "
        "dashboards, Prometheus-Operator manifests, scrape config, sidecar.",
    )
    gen.add_argument("--out", required=True, metavar="DIR", help="Directory to write into.")
    gen.add_argument(
        "--values", metavar="FILE", help="YAML file of overrides for config.libsonnet (same names)."
    )
    gen.set_defaults(func=cmd_generate)

    drill = sub.add_parser(
        "drill",
        help="Watch Prometheus or Alertmanager while a fault is on; report the alerts.",
        description="Game day: run next to a fault (a Chaos Mesh experiment `generate` "
        "rendered in chaos/). Polls the alerts API for --duration, then up to "
        "--resolve-timeout, and reports which expected alerts fired (labels, time since the "
        "start), which did not, what else fired, and whether they resolved. Exit 0 every "
        "expected alert fired and resolved, 1 not, 2 bad flags or experiment file, 3 the API "
        "does not answer, 4 it is not an alerts API or refuses the credentials.",
    )
    add_drill_arguments(drill)
    drill.set_defaults(func=cmd_drill)

    demo = sub.add_parser(
        "demo",
        help="Start a local 3-member etcd cluster with sample data and the exporter on localhost.",
    )
    demo.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default="127.0.0.1:9979",
        metavar="[HOST]:PORT",
        help="Exporter address (default: 127.0.0.1:9979).",
    )
    demo.add_argument("--keys", type=int, default=5000, help="Sample keys to write (default 5000).")
    demo.add_argument(
        "--dir",
        default=None,
        metavar="DIR",
        help="Where to keep the demo cluster's data (default: a temp dir).",
    )
    demo.add_argument(
        "--exit-after",
        dest="exit_after",
        type=float,
        default=None,
        metavar="SECONDS",
        help=argparse.SUPPRESS,
    )
    demo.set_defaults(func=cmd_demo)  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except ConfigError as err:
        if len(err.errors) == 1:  # one problem, one line
            print(f"etcd-inspector: {err.source}: {err.errors[0]}", file=sys.stderr)
        else:
            print(f"etcd-inspector: {err}", file=sys.stderr)
        return EXIT_ERROR
    except UsageError as err:
        print(f"etcd-inspector: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
