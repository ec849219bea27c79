"""The `drill` command's flags; kept apart from run.py so that building the parser imports
nothing heavy. Required flags are checked in run.py, so that a missing one is one line."""

from __future__ import annotations

import argparse

DEFAULT_RESOLVE_TIMEOUT = "10m"
DEFAULT_INTERVAL = "5s"
DEFAULT_TIMEOUT = "10s"


def add_drill_arguments(p: argparse.ArgumentParser) -> None:
    api = p.add_argument_group("alerts API (one of)")
    api.add_argument("--prometheus.url", dest="prometheus_url", metavar="URL",
                     help="Base URL of the Prometheus that evaluates the rules; "
                     "/api/v1/alerts is polled.")  # fmt: skip
    api.add_argument("--alertmanager.url", dest="alertmanager_url", metavar="URL",
                     help="Base URL of the Alertmanager it notifies; /api/v2/alerts is "
                     "polled.")  # fmt: skip
    api.add_argument("--http.config.file", dest="http_config_file", metavar="FILE",
                     help="Prometheus' HTTP client configuration (as promtool and amtool take "
                     "it): basic_auth, authorization / bearer_token_file, tls_config "
                     "(ca_file, cert_file, key_file).")  # fmt: skip
    api.add_argument("--timeout", dest="request_timeout", default=DEFAULT_TIMEOUT,
                     metavar="DURATION",
                     help=f"Timeout of each request (default: {DEFAULT_TIMEOUT}).")  # fmt: skip
    what = p.add_argument_group("what to expect")
    what.add_argument("--expect", action="append", default=[], metavar="ALERT[,ALERT...]",
                      help="Alert names the fault must trigger (repeatable).")  # fmt: skip
    what.add_argument("--experiment", metavar="FILE",
                      help="A Chaos Mesh experiment `generate` rendered (chaos/*.yaml): the "
                      "alerts come from its etcd-inspector.io/expected-alerts annotation, the "
                      "default --duration from its spec.duration.")  # fmt: skip
    what.add_argument("--match", action="append", default=[], metavar="LABEL=VALUE",
                      help="Only alerts with this label value count, e.g. cluster=staging "
                      "(repeatable; all must match): leaves out other clusters' alerts in a "
                      "shared Prometheus.")  # fmt: skip
    what.add_argument("--duration", metavar="DURATION",
                      help="How long the fault is on, from the start of the drill, e.g. 15m "
                      "(default: the experiment's spec.duration).")  # fmt: skip
    what.add_argument("--resolve-timeout", dest="resolve_timeout",
                      default=DEFAULT_RESOLVE_TIMEOUT, metavar="DURATION",
                      help="After the fault, how long to wait for the expected alerts to "
                      f"resolve (default: {DEFAULT_RESOLVE_TIMEOUT}).")  # fmt: skip
    what.add_argument("--interval", default=DEFAULT_INTERVAL, metavar="DURATION",
                      help=f"Poll interval (default: {DEFAULT_INTERVAL}).")  # fmt: skip
    p.add_argument("--output", choices=["text", "json"], default="text",
                   help="Report format (default: text); text also shows alerts firing and "
                   "resolving on stderr as they do.")  # fmt: skip
