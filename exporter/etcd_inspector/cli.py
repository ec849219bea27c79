"""Command line: `etcd-inspector run|inspect|generate|demo`, Prometheus-style flag names.

Exit codes: 0 fine, 1 findings (inspect), 2 bad configuration or could not run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from etcd_inspector import __version__
from etcd_inspector.backup.arguments import add_snapshot_arguments
from etcd_inspector.config import Config, ConfigError, load_config_file, merge_raw, parse_config
from etcd_inspector.errors import UsageError
from etcd_inspector.exitcodes import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from etcd_inspector.probes import REGISTRY
from etcd_inspector.web.address import parse_listen_address

log = logging.getLogger(__name__)

__all__ = ["UsageError", "build_parser", "flag_overrides", "load_config", "main",
           "parse_listen_address"]  # fmt: skip


def _probe_flag_dest(probe: str, option: str) -> str:
    return f"probe__{probe}__{option}"


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


_NOT_ETCD_FLAGS = {"backup_locations": "--backup.location", "backup_max_age": "--backup.max-age"}


def _flag_name(dest: str) -> str:
    return _NOT_ETCD_FLAGS.get(dest) or f"--etcd.{dest.replace('_', '-')}"


def add_etcd_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("etcd (flags override the config file; --etcd.* define one cluster)")
    g.add_argument(
        "--config.file",
        dest="config_file",
        metavar="FILE",
        help="YAML configuration file (see README: Configuration).",
    )
    g.add_argument(
        "--etcd.endpoints",
        dest="endpoints",
        metavar="URLS",
        help="Comma-separated client URLs of the members, e.g. "
        "https://10.0.0.1:2379,https://10.0.0.2:2379. Replaces the file's clusters.",
    )
    g.add_argument(
        "--etcd.metrics-urls",
        dest="metrics_urls",
        metavar="URLS",
        help="Comma-separated /metrics URLs, in the order of --etcd.endpoints, where "
        "they differ from the client URLs (etcd's --listen-metrics-urls, e.g. :2381).",
    )
    g.add_argument(
        "--etcd.cluster-name",
        dest="cluster_name",
        default=None,
        metavar="NAME",
        help="Value of the `cluster` label (default: default).",
    )
    g.add_argument(
        "--etcd.ca-file", dest="ca_file", metavar="FILE", help="CA bundle for etcd's TLS."
    )
    g.add_argument(
        "--etcd.cert-file", dest="cert_file", metavar="FILE", help="Client certificate for etcd."
    )
    g.add_argument(
        "--etcd.key-file", dest="key_file", metavar="FILE", help="Client certificate key for etcd."
    )
    g.add_argument(
        "--etcd.server-name",
        dest="server_name",
        metavar="NAME",
        help="TLS server name to verify instead of the endpoint's host.",
    )
    g.add_argument(
        "--etcd.username",
        dest="username",
        metavar="USER",
        help="etcd user (a read-only role is enough).",
    )
    g.add_argument(
        "--etcd.password-file",
        dest="password_file",
        metavar="FILE",
        help="File holding the etcd user's password.",
    )
    g.add_argument(
        "--etcd.local-member",
        dest="local_member",
        metavar="URL",
        help="Sidecar mode: the client URL of the member this instance runs beside; "
        "cluster-wide probes then run only while that member leads.",
    )
    g.add_argument(
        "--backup.location",
        dest="backup_locations",
        action="append",
        metavar="DIR",
        help="A directory holding the cluster's snapshots, for the backup probe (repeatable).",
    )
    g.add_argument(
        "--backup.max-age",
        dest="backup_max_age",
        metavar="DURATION",
        help="How old the newest snapshot may be (default: 1h).",
    )
    g.add_argument(
        "--inspection.interval",
        dest="inspection_interval",
        metavar="DURATION",
        help="Interval of every probe at once, e.g. 5s (tests and demos).",
    )
    for spec in REGISTRY.values():
        for flag in spec.flags:
            g.add_argument(
                flag.flag,
                dest=_probe_flag_dest(spec.name, flag.option),
                type=flag.type,
                default=None,
                metavar=flag.metavar,
                help=flag.help,
            )
    g.add_argument(
        "--log.level",
        dest="log_level",
        choices=["debug", "info", "warn", "error"],
        help="Log level (default: info).",
    )
    g.add_argument("--log.format", dest="log_format", choices=["logfmt", "json"],
                   help="Log format (default: logfmt).")  # fmt: skip


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The raw-config dict the flags stand for; merged over the config file's."""
    raw: dict[str, Any] = {}
    endpoints = _split(getattr(args, "endpoints", None))
    metrics_urls = _split(getattr(args, "metrics_urls", None))
    cluster_flags = {
        k: getattr(args, k, None)
        for k in ("cluster_name", "ca_file", "cert_file", "key_file", "server_name",
                  "username", "password_file", "local_member", "metrics_urls",
                  "backup_locations", "backup_max_age")
    }  # fmt: skip
    if endpoints:
        if metrics_urls and len(metrics_urls) != len(endpoints):
            raise UsageError(
                f"--etcd.metrics-urls has {len(metrics_urls)} URLs for {len(endpoints)} endpoints"
            )
        cluster: dict[str, Any] = {
            "name": args.cluster_name or "default",
            "endpoints": [
                {"url": e, "metrics_url": metrics_urls[i]} if metrics_urls else e
                for i, e in enumerate(endpoints)
            ],
        }
        tls = {k: cluster_flags[k] for k in ("ca_file", "cert_file", "key_file", "server_name")}
        if any(tls.values()):
            cluster["tls"] = {k: v for k, v in tls.items() if v}
        for k in ("username", "password_file", "local_member"):
            if cluster_flags[k]:
                cluster[k] = cluster_flags[k]
        if cluster_flags["backup_locations"] or cluster_flags["backup_max_age"]:
            cluster["backup"] = {"locations": cluster_flags["backup_locations"] or []}
            if cluster_flags["backup_max_age"]:
                cluster["backup"]["max_age"] = cluster_flags["backup_max_age"]
        raw["clusters"] = [cluster]
    elif any(cluster_flags.values()):
        used = ", ".join(_flag_name(k) for k, v in cluster_flags.items() if v)
        raise UsageError(f"{used} need --etcd.endpoints (or put them in the config file)")
    for section, key, attr in (
        ("web", "listen_address", "listen_address"),
        ("web", "telemetry_path", "telemetry_path"),
        ("log", "level", "log_level"),
        ("log", "format", "log_format"),
        ("inspection", "interval", "inspection_interval"),
    ):
        value = getattr(args, attr, None)
        if value is not None:
            raw.setdefault(section, {})[key] = value
    for spec in REGISTRY.values():
        for flag in spec.flags:
            value = getattr(args, _probe_flag_dest(spec.name, flag.option), None)
            if value is not None:
                probes = raw.setdefault("inspection", {}).setdefault("probes", {})
                probes.setdefault(spec.name, {})[flag.option] = value
    return raw


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
    return parse_config(merged, REGISTRY, source=source)


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args)
    if args.config_check:
        print(f"{args.config_file or 'flags'}: configuration OK "
              f"({len(config.clusters)} cluster(s))")  # fmt: skip
        return EXIT_OK
    from aiohttp import web

    from etcd_inspector.logsetup import setup_logging
    from etcd_inspector.web.app import create_app

    setup_logging(config.log_level, config.log_format)
    host, port = parse_listen_address(config.web.listen_address)
    log.info(
        "starting etcd-inspector",
        extra={"version": __version__, "address": config.web.listen_address,
               "clusters": ",".join(c.name for c in config.clusters)},
    )  # fmt: skip
    web.run_app(
        create_app(config), host=host, port=port, print=None, shutdown_timeout=5,
        access_log=None,
    )  # fmt: skip
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from etcd_inspector.inspect import run_inspect

    return run_inspect(args, load_config(args))


def cmd_generate(args: argparse.Namespace) -> int:
    from etcd_inspector.mixin import MixinError, generate

    try:
        written = generate(Path(args.out), Path(args.values) if args.values else None)
    except MixinError as err:
        print(f"etcd-inspector generate: {err}", file=sys.stderr)
        return EXIT_ERROR
    for path in written:
        print(path)
    return EXIT_OK


def cmd_snapshot(args: argparse.Namespace) -> int:
    from etcd_inspector.backup.take import run_snapshot

    return run_snapshot(args, load_config(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from etcd_inspector.demo.run import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etcd-inspector",
        description="Prometheus exporter and inspector for etcd clusters: proxies every member's "
        "/metrics with cluster/member labels and inspects consistency, big values, hot keys "
        "and quota headroom in the background.",
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
        "--no-progress",
        dest="progress",
        action="store_false",
        help="Do not show scan progress on the terminal.",
    )
    insp.set_defaults(func=cmd_inspect)

    snap = sub.add_parser(
        "snapshot",
        help="Save a verified etcd snapshot into a directory (once, or --every DURATION).",
        description="Stream a snapshot from a healthy member (a follower when there is one) "
        "through Maintenance.Snapshot, verify etcd's SHA-256 and the bbolt file, fsync, and "
        "rename it to <cluster>-<UTC time>-r<revision>.db. With auth on, Maintenance.Snapshot "
        "needs a user with the root role (--etcd.username). Exit 0 written, 2 usage, "
        "3 bad destination, 4 no space left, 5 etcd failed, 6 snapshot not whole.",
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
        print(f"etcd-inspector: {err}", file=sys.stderr)
        return EXIT_ERROR
    except UsageError as err:
        print(f"etcd-inspector: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
