"""The etcd flags shared by `run`, `inspect` and `snapshot`, and the raw config they stand for.

Precedence: a flag, then the config file; without a config file, etcdctl's environment
variables stand in for missing flags (ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT,
ETCDCTL_KEY, ETCDCTL_USER). `--etcd.endpoints` (or
ETCDCTL_ENDPOINTS) describes one cluster and replaces the file's `clusters:`. Endpoints may be
written like etcdctl's, without a scheme (`10.0.0.1:2379`): https when a CA, certificate or TLS
directory is given, else http.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping
from typing import Any

from etcd_inspector.errors import UsageError
from etcd_inspector.probes import REGISTRY
from etcd_inspector.sharding import Shard, ShardError, ordinal_of

# Flag dest -> the etcdctl environment variable that stands in for it.
ETCDCTL_ENV = {
    "endpoints": "ETCDCTL_ENDPOINTS",
    "ca_file": "ETCDCTL_CACERT",
    "cert_file": "ETCDCTL_CERT",
    "key_file": "ETCDCTL_KEY",
    "username": "ETCDCTL_USER",
}
_TLS_FLAGS = ("ca_file", "cert_file", "key_file", "tls_dir", "server_name")


def probe_flag_dest(probe: str, option: str) -> str:
    return f"probe__{probe}__{option}"


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


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
        "--etcd.tls-dir",
        dest="tls_dir",
        metavar="DIR",
        help="Directory holding ca.crt, tls.crt and tls.key (a mounted Kubernetes TLS Secret); "
        "--etcd.ca-file/--etcd.cert-file/--etcd.key-file win where given.",
    )
    g.add_argument(
        "--etcd.discovery",
        dest="discovery",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Also inspect the members the member list names that no endpoint reaches "
        "(default: on; one endpoint is then enough).",
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
        "--inspection.interval",
        dest="inspection_interval",
        metavar="DURATION",
        help="Interval of every probe at once, e.g. 5s (tests and demos).",
    )
    g.add_argument(
        "--mixin.values",
        dest="mixin_values",
        metavar="FILE",
        help="The YAML file of mixin values your alerts are rendered with (generate --values): "
        "findings compare with the same thresholds (default: the mixin's defaults).",
    )
    for spec in REGISTRY.values():
        for flag in spec.flags:
            g.add_argument(
                flag.flag,
                dest=probe_flag_dest(spec.name, flag.option),
                action="append" if flag.repeatable else "store",
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


def _value(args: argparse.Namespace, dest: str, environ: Mapping[str, str]) -> str | None:
    value = getattr(args, dest, None)
    if value is None and dest in ETCDCTL_ENV:
        value = environ.get(ETCDCTL_ENV[dest]) or None
    return value if isinstance(value, str) else None


def with_scheme(endpoint: str, tls: bool) -> str:
    """etcdctl's `host:port` as a URL: https when TLS files are given."""
    if "://" in endpoint:
        return endpoint
    return f"{'https' if tls else 'http'}://{endpoint}"


def _username(value: str | None) -> str | None:
    if value is not None and ":" in value:
        # Passwords are only read from files (never from a flag or the environment, where
        # they leak into process listings and shell history).
        raise UsageError(
            "ETCDCTL_USER/--etcd.username must be a user name without ':password'; "
            "put the password in a file and give --etcd.password-file"
        )
    return value


def flag_overrides(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The raw-config dict the flags (and etcdctl's environment variables) stand for; merged
    over the config file's."""
    env = os.environ if environ is None else environ
    if getattr(args, "config_file", None):
        env = {}  # a config file says which clusters; the shell's etcdctl setup does not
    raw: dict[str, Any] = {}
    endpoints = _split(_value(args, "endpoints", env))
    metrics_urls = _split(getattr(args, "metrics_urls", None))
    cluster_flags: dict[str, Any] = {
        k: _value(args, k, env)
        for k in ("cluster_name", "ca_file", "cert_file", "key_file", "tls_dir", "server_name",
                  "username", "password_file", "local_member", "metrics_urls")
    }  # fmt: skip
    cluster_flags["username"] = _username(cluster_flags["username"])
    discovery = getattr(args, "discovery", None)
    if endpoints:
        if metrics_urls and len(metrics_urls) != len(endpoints):
            raise UsageError(
                f"--etcd.metrics-urls has {len(metrics_urls)} URLs for {len(endpoints)} endpoints"
            )
        tls_given = any(cluster_flags[k] for k in ("ca_file", "cert_file", "tls_dir"))
        urls = [with_scheme(e, tls_given) for e in endpoints]
        cluster: dict[str, Any] = {
            "name": args.cluster_name or "default",
            "endpoints": [
                {"url": e, "metrics_url": metrics_urls[i]} if metrics_urls else e
                for i, e in enumerate(urls)
            ],
        }
        tls_keys = {"ca_file": "ca_file", "cert_file": "cert_file", "key_file": "key_file",
                    "server_name": "server_name", "tls_dir": "dir"}  # fmt: skip
        tls = {key: cluster_flags[flag] for flag, key in tls_keys.items() if cluster_flags[flag]}
        if tls:
            cluster["tls"] = tls
        for k in ("username", "password_file"):
            if cluster_flags[k]:
                cluster[k] = cluster_flags[k]
        if cluster_flags["local_member"]:
            cluster["local_member"] = with_scheme(cluster_flags["local_member"], tls_given)
        if discovery is not None:
            cluster["discover"] = discovery
        raw["clusters"] = [cluster]
    elif any(getattr(args, k, None) for k in cluster_flags) or discovery is not None:
        used = ", ".join(
            f"--etcd.{k.replace('_', '-')}" for k in cluster_flags if getattr(args, k, None)
        )
        raise UsageError(f"{used or '--etcd.discovery'} need --etcd.endpoints "
                         "(or put them in the config file)")  # fmt: skip
    for section, key, attr in (
        ("web", "listen_address", "listen_address"),
        ("web", "telemetry_path", "telemetry_path"),
        ("web", "config_file", "web_config_file"),
        ("web", "max_connections", "max_connections"),
        ("web", "max_connections_per_client", "max_connections_per_client"),
        ("web", "read_header_timeout", "read_header_timeout"),
        ("web", "idle_timeout", "idle_timeout"),
        ("log", "level", "log_level"),
        ("log", "format", "log_format"),
        ("inspection", "interval", "inspection_interval"),
        ("inspection", "mixin_values", "mixin_values"),
    ):
        value = getattr(args, attr, None)
        if value is not None:
            raw.setdefault(section, {})[key] = value
    for spec in REGISTRY.values():
        for flag in spec.flags:
            value = getattr(args, probe_flag_dest(spec.name, flag.option), None)
            if value is not None:
                probes = raw.setdefault("inspection", {}).setdefault("probes", {})
                probes.setdefault(spec.name, {})[flag.option] = value
    return raw


def add_shard_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "sharding (kube-state-metrics' flags: n replicas share the configured clusters)"
    )
    g.add_argument(
        "--shard",
        dest="shard",
        type=int,
        metavar="I",
        help="Watch only the clusters of shard I (0..N-1) (default: 0).",
    )
    g.add_argument(
        "--total-shards",
        dest="total_shards",
        type=int,
        metavar="N",
        help="Number of replicas sharing the clusters (default: 1, no sharding).",
    )
    g.add_argument(
        "--shard.from-pod-name",
        dest="shard_from_pod_name",
        action="store_true",
        help="Take the shard from the StatefulSet ordinal ending $POD_NAME "
        "(else the host name), e.g. etcd-inspector-2 -> 2; needs --total-shards.",
    )


def shard_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Shard:
    """This replica's shard from --shard/--total-shards/--shard.from-pod-name (subcommands
    without them: unsharded). Raises UsageError with one line."""
    env = os.environ if environ is None else environ
    index: int | None = getattr(args, "shard", None)
    total: int | None = getattr(args, "total_shards", None)
    try:
        if getattr(args, "shard_from_pod_name", False):
            if index is not None:
                raise UsageError("give --shard or --shard.from-pod-name, not both")
            if total is None:
                raise UsageError("--shard.from-pod-name needs --total-shards")
            index = ordinal_of(env.get("POD_NAME") or socket.gethostname())
        if index is not None and total is None:
            raise UsageError("--shard needs --total-shards")
        return Shard(index or 0, 1 if total is None else total)
    except ShardError as err:
        raise UsageError(str(err)) from err
