"""Tests for the strict YAML config loader (etcd_inspector.config)."""

from __future__ import annotations

import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from pydantic import ValidationError, model_validator

from etcd_inspector.config import (
    ClusterConfig,
    ConfigError,
    Duration,
    EndpointConfig,
    ProbeConfig,
    ScrapeConfig,
    Section,
    TLSConfig,
    WebConfig,
    load_config_file,
    merge_raw,
    parse_config,
    parse_duration,
)
from etcd_inspector.demo.pki import make_pki

TESTDATA = Path(__file__).parent / "testdata" / "config"


# --------------------------------------------------------------------------- fake probe registry


class StatusOptions(Section):
    pass


class BigValueOptions(Section):
    threshold_bytes: int = 102400
    top_n: int = 10
    prefixes: tuple[str, ...] = ()
    ratio: float = 0.5
    mode: Literal["full", "prefix", "hash"] = "full"


class HotKeysOptions(Section):
    window: Duration = 60.0
    max_age_seconds: Duration = 30.0
    sizes: tuple[int, ...] = (10,)
    label: str | None = "default"


class QuotaOptions(Section):
    warn_ratio: float = 0.8
    crit_ratio: float = 0.9

    @model_validator(mode="after")
    def _check(self) -> QuotaOptions:
        if self.warn_ratio >= self.crit_ratio:
            raise ValueError("warn_ratio must be below crit_ratio")
        return self


@dataclass(frozen=True)
class FakeSpec:
    name: str
    options_type: type[Section]
    default_enabled: bool
    default_interval: float
    default_timeout: float


SPECS = {
    "status": FakeSpec("status", StatusOptions, True, 15.0, 5.0),
    "bigvalue": FakeSpec("bigvalue", BigValueOptions, True, 300.0, 60.0),
    "hotkeys": FakeSpec("hotkeys", HotKeysOptions, False, 60.0, 120.0),
    "quota": FakeSpec("quota", QuotaOptions, True, 30.0, 10.0),
}

MINIMAL = {"clusters": [{"name": "main", "endpoints": ["https://10.0.0.1:2379"]}]}


@pytest.fixture
def tls_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a directory holding the files the testdata YAML names by relative path: real
    PEM files, since the loader loads them as the client will."""
    pki = make_pki(tmp_path / "pki")
    shutil.copy(pki.ca_file, tmp_path / "ca.pem")
    shutil.copy(pki.client_cert, tmp_path / "client.pem")
    shutil.copy(pki.client_key, tmp_path / "client-key.pem")
    (tmp_path / "password").write_text("not really a password\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(name: str) -> object:
    path = TESTDATA / name
    return parse_config(load_config_file(str(path), SPECS), SPECS, source=name)


def errors_of(raw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, SPECS)
    return info.value.errors


# --------------------------------------------------------------------------- invalid files

INVALID = [
    (
        "invalid-unknown-key.yml",
        "clusters[0]: unknown key 'dial_timout' (did you mean 'dial_timeout'?)",
    ),
    (
        "invalid-top-level-key.yml",
        "top level: unknown key 'cluster' (did you mean 'clusters'?)",
    ),
    (
        "invalid-url-scheme.yml",
        "clusters[0].endpoints[0]: 'htp://10.0.0.1:2379' is not an http(s) URL",
    ),
    (
        "invalid-url-missing-port.yml",
        "clusters[0].endpoints[0]: 'https://10.0.0.1' has no port "
        "(write it explicitly, e.g. 'https://10.0.0.1:2379')",
    ),
    (
        "invalid-url-path.yml",
        "clusters[0].endpoints[0].url: 'https://10.0.0.1:2379/v3' must not have a path",
    ),
    (
        "invalid-duplicate-endpoint.yml",
        "clusters[0].endpoints[2]: duplicate endpoint 'https://10.0.0.1:2379' "
        "(same as endpoints[0])",
    ),
    (
        "invalid-duplicate-cluster.yml",
        "clusters[2].name: duplicate cluster name 'main' (same as clusters[0])",
    ),
    (
        "invalid-cert-without-key.yml",
        "clusters[0].tls: cert_file is set but key_file is not",
    ),
    (
        "invalid-regex.yml",
        "scrape.metrics_allow: invalid regex 'etcd_(server': missing ), unterminated subpattern",
    ),
    (
        "invalid-duration.yml",
        "clusters[0].dial_timeout: '2 seconds' is not a duration",
    ),
    (
        "invalid-duration-bare-number.yml",
        "scrape.timeout: '15' has no unit; write e.g. '15s'",
    ),
    (
        "invalid-duration-zero.yml",
        "clusters[0].request_timeout: must be greater than 0, got '0s'",
    ),
    (
        "invalid-unknown-probe.yml",
        "inspection.probes: unknown probe 'bigvalues' (did you mean 'bigvalue'?); "
        "known probes: bigvalue, hotkeys, quota, status",
    ),
    (
        "invalid-unknown-probe-option.yml",
        "inspection.probes.bigvalue: unknown key 'threshold' (did you mean 'threshold_bytes'?)",
    ),
    (
        "invalid-option-type.yml",
        "inspection.probes.bigvalue.top_n: expected an integer, got string",
    ),
    (
        "invalid-option-bool-for-int.yml",
        "inspection.probes.bigvalue.threshold_bytes: expected an integer, got boolean",
    ),
    (
        "invalid-option-literal.yml",
        "inspection.probes.bigvalue.mode: 'sha256' is not one of full, prefix, hash",
    ),
    (
        "invalid-option-tuple-element.yml",
        "inspection.probes.bigvalue.prefixes[1]: expected a string, got integer",
    ),
    (
        "invalid-missing-clusters.yml",
        "clusters: at least one cluster is required",
    ),
    (
        "invalid-missing-tls-file.yml",
        "clusters[0].tls.ca_file: cannot read 'does-not-exist/ca.pem': No such file or directory",
    ),
    (
        "invalid-wrong-type.yml",
        "web.listen_address: expected a string, got list",
    ),
    (
        "invalid-username-without-password.yml",
        "clusters[0]: username is set but password_file is not",
    ),
    (
        "invalid-local-member.yml",
        "clusters[0].local_member: 'https://10.0.0.9:2379' is not one of the cluster's "
        "endpoint urls (https://10.0.0.1:2379, https://10.0.0.2:2379)",
    ),
    (
        "invalid-cluster-name.yml",
        "clusters[0].name: 'my cluster' must match [a-zA-Z0-9_.:-]+",
    ),
    (
        "invalid-telemetry-path.yml",
        "web.telemetry_path: '/' must start with '/' and must not be '/'",
    ),
    (
        "invalid-log-level.yml",
        "log.level: 'verbose' is not one of debug, info, warn, error",
    ),
    (
        "invalid-key-labels.yml",
        "inspection.key_labels: 'truncate' is not one of full, prefix, hash",
    ),
]


@pytest.mark.parametrize(("filename", "expected"), INVALID, ids=[f for f, _ in INVALID])
def test_invalid_file_reports_exactly_one_problem(
    tls_files: Path, filename: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(filename)
    assert len(info.value.errors) == 1, info.value.errors
    assert info.value.errors[0].startswith(expected), info.value.errors[0]
    assert info.value.source == filename


def test_every_invalid_testdata_file_is_in_the_table() -> None:
    on_disk = {p.name for p in TESTDATA.glob("invalid-*.yml")}
    # These two are exercised by their own tests below.
    on_disk -= {"invalid-three-errors.yml", "invalid-duplicate-yaml-key.yml"}
    assert on_disk == {f for f, _ in INVALID}


def test_all_errors_are_reported_at_once(tls_files: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load("invalid-three-errors.yml")
    assert info.value.errors == [
        "scrape.timeout: '10' has no unit; write e.g. '10s'",
        "inspection.probes.bigvalue.top_n: expected an integer, got string",
        "clusters[0].endpoints[0]: 'htp://10.0.0.1:2379' is not an http(s) URL",
    ]
    assert str(info.value) == (
        "3 problems in invalid-three-errors.yml:\n"
        "  - scrape.timeout: '10' has no unit; write e.g. '10s'\n"
        "  - inspection.probes.bigvalue.top_n: expected an integer, got string\n"
        "  - clusters[0].endpoints[0]: 'htp://10.0.0.1:2379' is not an http(s) URL"
    )


def test_several_errors_in_one_section_are_all_reported() -> None:
    raw = {
        "clusters": [
            {
                "name": "main",
                "endpoints": ["htp://a:1", "https://b", {"url": "https://c:2379/x"}],
                "dial_timeout": "soon",
                "request_timeout": 5,
                "colour": "blue",
            }
        ]
    }
    errors = errors_of(raw)
    assert len(errors) == 6, errors
    assert errors[0] == (
        "clusters[0]: unknown key 'colour' (allowed: name, endpoints, tls, metrics_tls, "
        "username, password_file, dial_timeout, request_timeout, local_member, discover, probes)"
    )
    assert [e.split(":")[0] for e in errors[1:]] == [
        "clusters[0].endpoints[0]",
        "clusters[0].endpoints[1]",
        "clusters[0].endpoints[2].url",
        "clusters[0].dial_timeout",
        "clusters[0].request_timeout",
    ]


# --------------------------------------------------------------------------- valid file


def test_valid_full(tls_files: Path) -> None:
    config = load("valid-full.yml")

    assert config.log_level == "debug"
    assert config.log_format == "json"
    assert config.key_labels == "hash"
    assert config.web == WebConfig(
        listen_address="127.0.0.1:19979", telemetry_path="/probe-metrics"
    )

    assert config.scrape.timeout == 8.0
    assert config.scrape.timeout_offset == 0.25
    assert config.scrape.metrics_allow.fullmatch("etcd_server_has_leader")
    assert config.scrape.metrics_allow.fullmatch("go_goroutines") is None
    assert config.scrape.metrics_deny.pattern == "etcd_debugging_.*"

    main, events = config.clusters
    assert main == ClusterConfig(
        name="main",
        endpoints=(
            EndpointConfig("https://10.0.0.1:2379", "https://10.0.0.1:2379/metrics"),
            EndpointConfig("https://10.0.0.2:2379", "http://10.0.0.2:2381/metrics"),
            EndpointConfig("https://10.0.0.3:2379", "https://metrics.example:9443/custom/path"),
        ),
        tls=TLSConfig(
            ca_file="ca.pem",
            cert_file="client.pem",
            key_file="client-key.pem",
            server_name="etcd.example",
        ),
        metrics_tls=TLSConfig(insecure_skip_verify=True),
        username="inspector",
        password_file="password",
        dial_timeout=3.0,
        request_timeout=60.0,
        local_member="https://10.0.0.2:2379",
    )
    assert main.tls.enabled
    assert events == ClusterConfig(
        name="events.k8s-1:a",
        endpoints=(EndpointConfig("http://127.0.0.1:12379", "http://127.0.0.1:12379/metrics"),),
    )
    assert events.metrics_tls is None
    assert not events.tls.enabled

    assert set(config.probes) == set(SPECS)
    assert config.probes["bigvalue"] == ProbeConfig(
        enabled=False,
        interval=90.0,
        timeout=120.0,  # explicit, so allowed to exceed the interval
        options=BigValueOptions(
            threshold_bytes=2048,
            top_n=5,
            prefixes=("/registry/", "/config/"),
            ratio=2.0,
            mode="prefix",
        ),
    )
    assert isinstance(config.probes["bigvalue"].options.ratio, float)
    assert config.probes["hotkeys"] == ProbeConfig(
        enabled=False,  # the spec's default
        interval=45.0,  # inspection.interval
        timeout=20.0,  # inspection.timeout
        options=HotKeysOptions(window=300.0, max_age_seconds=90.0, sizes=(1, 2, 3), label=None),
    )
    # Not mentioned in the YAML: spec defaults, but inspection.interval/timeout still apply.
    assert config.probes["status"] == ProbeConfig(
        enabled=True, interval=45.0, timeout=20.0, options=StatusOptions()
    )
    assert config.probes["quota"] == ProbeConfig(
        enabled=True, interval=45.0, timeout=20.0, options=QuotaOptions()
    )


def test_minimal_config_uses_defaults() -> None:
    config = parse_config(MINIMAL, SPECS)
    assert config.web == WebConfig(listen_address=":9979", telemetry_path="/metrics")
    assert config.scrape == ScrapeConfig(timeout=10.0, timeout_offset=0.5)
    assert (config.log_level, config.log_format, config.key_labels) == ("info", "logfmt", "full")
    cluster = config.clusters[0]
    assert (cluster.dial_timeout, cluster.request_timeout) == (2.0, 5.0)
    assert cluster.tls == TLSConfig()
    assert cluster.metrics_tls is None
    assert config.probes == {
        "status": ProbeConfig(True, 15.0, 5.0, StatusOptions()),
        "bigvalue": ProbeConfig(True, 300.0, 60.0, BigValueOptions()),
        # default_timeout 120s is capped to the 60s interval
        "hotkeys": ProbeConfig(False, 60.0, 60.0, HotKeysOptions()),
        "quota": ProbeConfig(True, 30.0, 10.0, QuotaOptions()),
    }


def test_implicit_probe_timeout_is_capped_by_interval() -> None:
    raw = merge_raw(
        MINIMAL,
        {
            "inspection": {
                "timeout": "1m",
                "probes": {"status": {"interval": "10s"}, "bigvalue": {"interval": "2m"}},
            }
        },
    )
    probes = parse_config(raw, SPECS).probes
    assert (probes["status"].interval, probes["status"].timeout) == (10.0, 10.0)
    assert (probes["bigvalue"].interval, probes["bigvalue"].timeout) == (120.0, 60.0)


@pytest.mark.parametrize("raw", [None, {}])
def test_empty_config_requires_clusters(raw: object) -> None:
    assert errors_of(raw) == ["clusters: at least one cluster is required"]


def test_top_level_must_be_a_mapping() -> None:
    assert errors_of(["clusters"]) == ["top level: expected a mapping, got list"]


def test_null_sections_and_probe_bodies_mean_defaults() -> None:
    raw = merge_raw(
        MINIMAL, {"web": None, "scrape": None, "inspection": {"probes": {"status": None}}}
    )
    config = parse_config(raw, SPECS)
    assert config.web == WebConfig()
    assert config.probes["status"] == ProbeConfig(True, 15.0, 5.0, StatusOptions())


def test_option_durations() -> None:
    def hotkeys(**options: object) -> object:
        raw = merge_raw(MINIMAL, {"inspection": {"probes": {"hotkeys": options}}})
        return parse_config(raw, SPECS).probes["hotkeys"].options

    # *_seconds floats take plain seconds or a duration string.
    assert hotkeys(max_age_seconds=2.5).max_age_seconds == 2.5
    assert hotkeys(max_age_seconds="1m").max_age_seconds == 60.0
    assert hotkeys(window="1h").window == 3600.0
    # A Duration-annotated field without the _seconds suffix has no implied unit.
    raw = merge_raw(MINIMAL, {"inspection": {"probes": {"hotkeys": {"window": 30}}}})
    assert errors_of(raw) == [
        "inspection.probes.hotkeys.window: '30' has no unit; write e.g. '30s'"
    ]
    raw = merge_raw(MINIMAL, {"inspection": {"probes": {"hotkeys": {"max_age_seconds": True}}}})
    assert errors_of(raw) == [
        "inspection.probes.hotkeys.max_age_seconds: expected a duration string like '15s', "
        "got boolean"
    ]


def test_probe_reserved_keys_are_type_checked() -> None:
    raw = merge_raw(
        MINIMAL,
        {"inspection": {"probes": {"status": {"enabled": "yes", "interval": "0s", "timeout": 3}}}},
    )
    assert errors_of(raw) == [
        "inspection.probes.status.enabled: expected a boolean, got string",
        "inspection.probes.status.interval: must be greater than 0, got '0s'",
        "inspection.probes.status.timeout: '3' has no unit; write e.g. '3s'",
    ]


def test_status_probe_has_no_options() -> None:
    raw = merge_raw(MINIMAL, {"inspection": {"probes": {"status": {"verbose": True}}}})
    assert errors_of(raw) == [
        "inspection.probes.status: unknown key 'verbose' (allowed: enabled, interval, timeout)"
    ]


def test_options_post_init_error_is_reported() -> None:
    raw = merge_raw(MINIMAL, {"inspection": {"probes": {"quota": {"warn_ratio": 0.95}}}})
    assert errors_of(raw) == ["inspection.probes.quota: warn_ratio must be below crit_ratio"]


def test_float_option_rejects_bool_and_accepts_int() -> None:
    raw = merge_raw(MINIMAL, {"inspection": {"probes": {"bigvalue": {"ratio": False}}}})
    assert errors_of(raw) == ["inspection.probes.bigvalue.ratio: expected a number, got boolean"]
    raw = merge_raw(MINIMAL, {"inspection": {"probes": {"bigvalue": {"ratio": 1}}}})
    assert parse_config(raw, SPECS).probes["bigvalue"].options.ratio == 1.0


def test_endpoint_forms_and_metrics_url() -> None:
    raw = {
        "clusters": [
            {
                "name": "c",
                "endpoints": [
                    "http://[::1]:2379",
                    {"url": "https://a:2379", "metrics_url": "https://a:2381/"},
                    {"url": "https://b:2379", "metrics_url": "http://b"},
                ],
            }
        ]
    }
    assert parse_config(raw, SPECS).clusters[0].endpoints == (
        EndpointConfig("http://[::1]:2379", "http://[::1]:2379/metrics"),
        EndpointConfig("https://a:2379", "https://a:2381/metrics"),
        EndpointConfig("https://b:2379", "http://b/metrics"),
    )


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        (
            "10.0.0.1:2379",
            "'10.0.0.1:2379' is not an http(s) URL (missing 'http://' or 'https://'?)",
        ),
        ("https://10.0.0.1:99999", "'https://10.0.0.1:99999' has an invalid port"),
        ("https://:2379", "'https://:2379' is not an http(s) URL"),
        ("https://u:secret@a:2379", "URL must not contain credentials"),
        ("https://a:2379?x=1", "'https://a:2379?x=1' must not have a query string"),
        (42, "expected a URL string or a mapping with url/metrics_url, got integer"),
    ],
)
def test_bad_endpoint_urls(endpoint: object, expected: str) -> None:
    errors = errors_of({"clusters": [{"name": "c", "endpoints": [endpoint]}]})
    assert len(errors) == 1
    assert errors[0].startswith(f"clusters[0].endpoints[0]: {expected}"), errors[0]
    assert "secret" not in errors[0]


def test_cluster_structure_errors() -> None:
    errors = errors_of({"clusters": [{"endpoints": []}, "main", {"name": "x"}]})
    assert errors == [
        "clusters[0]: missing required key 'name'",
        "clusters[0].endpoints: at least one endpoint is required",
        "clusters[1]: expected a mapping, got string",
        "clusters[2]: missing required key 'endpoints'",
    ]
    assert errors_of({"clusters": {"name": "x"}}) == ["clusters: expected a list, got mapping"]


def test_unreadable_tls_and_password_files(tmp_path: Path) -> None:
    raw = {
        "clusters": [
            {
                "name": "c",
                "endpoints": ["https://a:2379"],
                "tls": {"key_file": str(tmp_path)},
                "metrics_tls": {"ca_file": str(tmp_path / "missing.pem")},
                "username": "u",
                "password_file": str(tmp_path / "nope"),
            }
        ]
    }
    assert errors_of(raw) == [
        f"clusters[0].tls.key_file: cannot read {str(tmp_path)!r}: not a regular file",
        "clusters[0].tls: key_file is set but cert_file is not (a client cert needs both)",
        f"clusters[0].metrics_tls.ca_file: cannot read {str(tmp_path / 'missing.pem')!r}: "
        "No such file or directory",
        f"clusters[0].password_file: cannot read {str(tmp_path / 'nope')!r}: "
        "No such file or directory",
    ]


def test_password_file_content_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("hunter2\n")
    raw = merge_raw(MINIMAL, {})
    raw["clusters"][0].update(username="u", password_file=str(secret))
    cluster = parse_config(raw, SPECS).clusters[0]
    assert cluster.password_file == str(secret)
    assert "hunter2" not in repr(cluster)


def test_web_and_scrape_validation() -> None:
    raw = merge_raw(
        MINIMAL,
        {
            "web": {"listen_address": "9979", "telemetry_path": "metrics"},
            "scrape": {"timeout_offset": "0s", "metrics_deny": "(", "metrics_allow": 3},
        },
    )
    assert errors_of(raw) == [
        "web.listen_address: '9979' is not a [host]:port address (e.g. ':9979')",
        "web.telemetry_path: 'metrics' must start with '/' and must not be '/'",
        "scrape.metrics_allow: expected a string, got integer",
        "scrape.metrics_deny: invalid regex '(': missing ), unterminated subpattern at position 0",
    ]
    # timeout_offset may be zero, timeout may not
    raw = merge_raw(MINIMAL, {"scrape": {"timeout_offset": "0s"}})
    assert parse_config(raw, SPECS).scrape.timeout_offset == 0.0


@pytest.mark.parametrize("address", [":9979", "0.0.0.0:9979", "[::]:9979", "localhost:80"])
def test_listen_address_forms(address: str) -> None:
    raw = merge_raw(MINIMAL, {"web": {"listen_address": address}})
    assert parse_config(raw, SPECS).web.listen_address == address


def test_config_error_rendering_and_pickling() -> None:
    err = ConfigError(["a: b"], "x.yml")
    assert str(err) == "1 problem in x.yml:\n  - a: b"
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.errors, clone.source) == (["a: b"], "x.yml")
    assert str(ConfigError(["p", "q"])) == "2 problems in <config>:\n  - p\n  - q"


def test_config_is_frozen() -> None:
    config = parse_config(MINIMAL, SPECS)
    with pytest.raises(ValidationError, match="frozen"):
        config.clusters[0].name = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------- load_config_file


def test_load_empty_file_gives_empty_mapping(tmp_path: Path) -> None:
    path = tmp_path / "empty.yml"
    path.write_text("# nothing here\n")
    assert load_config_file(str(path), SPECS) == {}


def test_load_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_file("/nonexistent/etcd-inspector.yml", SPECS)
    assert info.value.errors == ["cannot read config file: No such file or directory"]
    assert info.value.source == "/nonexistent/etcd-inspector.yml"


def test_load_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("clusters:\n  - name: main\n    endpoints: [https://a:2379\n")
    with pytest.raises(ConfigError) as info:
        load_config_file(str(path), SPECS)
    assert len(info.value.errors) == 1
    assert re.fullmatch(r"invalid YAML: .* \(line \d+, column \d+\)", info.value.errors[0])


def test_load_rejects_duplicate_keys() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_file(str(TESTDATA / "invalid-duplicate-yaml-key.yml"), SPECS)
    assert info.value.errors == ["line 5: duplicate key 'dial_timeout' (first defined at line 4)"]


def test_load_allows_merge_key_overrides(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yml"
    path.write_text(
        "base: &base {dial_timeout: 2s, request_timeout: 5s}\n"
        "other:\n  <<: *base\n  dial_timeout: 3s\n"
    )
    raw = load_config_file(str(path), SPECS)
    assert raw["other"] == {"dial_timeout": "3s", "request_timeout": "5s"}


def test_load_rejects_non_mapping_top_level(tmp_path: Path) -> None:
    path = tmp_path / "list.yml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError) as info:
        load_config_file(str(path), SPECS)
    assert info.value.errors == ["top level: expected a mapping, got list"]


# --------------------------------------------------------------------------- parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("15s", 15.0),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1y", 31536000.0),
        ("1h1m1s1ms", 3661.001),
        ("0s", 0.0),
        (" 10s ", 10.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("15", "'15' has no unit; write e.g. '15s'"),
        ("1.5", "'1.5' has no unit; write e.g. '1500ms'"),
        ("1.5s", "'1.5s' is not a duration"),
        ("30s1m", "'30s1m' is not a duration"),
        ("10 s", "'10 s' is not a duration"),
        ("-5s", "'-5s' is not a duration"),
        ("", "'' is not a duration"),
        ("5S", "'5S' is not a duration"),
    ],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value).startswith(message)


def test_parse_duration_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="expected a duration string like '15s', got integer"):
        parse_duration(15)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- merge_raw


def test_merge_raw() -> None:
    base = {
        "web": {"listen_address": ":9979", "telemetry_path": "/metrics"},
        "clusters": [{"name": "file"}],
        "inspection": {"probes": {"bigvalue": {"top_n": 5, "prefixes": ["/a"]}}},
        "log": "not-a-mapping",
    }
    overrides = {
        "web": {"listen_address": ":1234"},
        "clusters": [{"name": "flag"}],
        "inspection": {"probes": {"bigvalue": {"prefixes": ["/b"]}, "status": {"enabled": False}}},
        "log": {"level": "debug"},
    }
    merged = merge_raw(base, overrides)
    assert merged == {
        "web": {"listen_address": ":1234", "telemetry_path": "/metrics"},
        "clusters": [{"name": "flag"}],
        "inspection": {
            "probes": {"bigvalue": {"top_n": 5, "prefixes": ["/b"]}, "status": {"enabled": False}}
        },
        "log": {"level": "debug"},
    }
    # Inputs untouched and not aliased by the result.
    assert base["web"] == {"listen_address": ":9979", "telemetry_path": "/metrics"}
    merged["clusters"][0]["name"] = "changed"
    merged["inspection"]["probes"]["bigvalue"]["top_n"] = 99
    assert overrides["clusters"] == [{"name": "flag"}]
    assert base["inspection"]["probes"]["bigvalue"]["top_n"] == 5


def test_merge_raw_over_empty_file_then_parse() -> None:
    flags = {"clusters": [{"name": "default", "endpoints": ["http://127.0.0.1:2379"]}]}
    config = parse_config(merge_raw({}, flags), SPECS)
    assert config.clusters[0].endpoints == (
        EndpointConfig("http://127.0.0.1:2379", "http://127.0.0.1:2379/metrics"),
    )


# --------------------------------------------------------------------------- bounds


def test_int_options_must_fit_in_int64() -> None:
    raw = merge_raw(MINIMAL, {"inspection": {"probes": {"bigvalue": {"top_n": 2**64}}}})
    assert errors_of(raw) == [
        "inspection.probes.bigvalue.top_n: must be between -9223372036854775808 and "
        "9223372036854775807 (etcd's int64), got 18446744073709551616"
    ]


def test_real_page_size_of_2_to_the_64_is_rejected() -> None:
    from etcd_inspector.probes import REGISTRY

    raw = merge_raw(MINIMAL, {"inspection": {"probes": {"bigvalue": {"page_size": 2**64}}}})
    with pytest.raises(ConfigError) as info:
        parse_config(raw, REGISTRY)
    assert info.value.errors == [
        "inspection.probes.bigvalue.page_size: must be between -9223372036854775808 and "
        "9223372036854775807 (etcd's int64), got 18446744073709551616"
    ]


def test_float_options_must_be_finite() -> None:
    raw = merge_raw(MINIMAL, {"inspection": {"probes": {"bigvalue": {"ratio": float("inf")}}}})
    assert errors_of(raw) == ["inspection.probes.bigvalue.ratio: must be a finite number, got inf"]


@pytest.mark.parametrize("value", ["1000000y", "2y", "366d", "99999999999999999999999999y"])
def test_durations_above_a_year_are_rejected(value: str) -> None:
    raw = merge_raw(MINIMAL, {})
    raw["clusters"][0]["request_timeout"] = value
    assert errors_of(raw) == [f"clusters[0].request_timeout: must be at most 1y, got {value!r}"]


def test_duration_of_exactly_a_year_is_accepted() -> None:
    raw = merge_raw(MINIMAL, {"scrape": {"timeout": "1y"}})
    assert parse_config(raw, SPECS).scrape.timeout == 365 * 86400.0


def test_seconds_options_are_bounded_too() -> None:
    raw = merge_raw(MINIMAL, {"inspection": {"probes": {"hotkeys": {"max_age_seconds": 10**12}}}})
    assert errors_of(raw) == [
        "inspection.probes.hotkeys.max_age_seconds: must be at most 1y, got 1000000000000"
    ]
    raw = merge_raw(MINIMAL, {"inspection": {"probes": {"hotkeys": {"max_age_seconds": -1}}}})
    assert errors_of(raw) == [
        "inspection.probes.hotkeys.max_age_seconds: must not be negative, got -1"
    ]


def test_load_rejects_deep_nesting(tmp_path: Path) -> None:
    path = tmp_path / "deep.yml"
    path.write_text("clusters: " + "[" * 10_000 + "]" * 10_000 + "\n")
    with pytest.raises(ConfigError) as info:
        load_config_file(str(path), SPECS)
    assert info.value.errors == ["invalid YAML: nested deeper than 100 levels (line 1, column 110)"]


def test_load_rejects_deep_block_nesting(tmp_path: Path) -> None:
    path = tmp_path / "deep.yml"
    path.write_text("".join(f"{'  ' * i}k{i}:\n" for i in range(10_000)))
    with pytest.raises(ConfigError) as info:
        load_config_file(str(path), SPECS)
    assert len(info.value.errors) == 1
    assert info.value.errors[0].startswith("invalid YAML: nested deeper than 100 levels")


def test_a_tls_dir_with_none_of_the_secrets_files_is_an_error(tmp_path: Path) -> None:
    """An empty (or wrong) --etcd.tls-dir used to mean plain TLS with the system CAs, which then
    failed at the first call as "unknown authority"; now it is one line naming the directory."""
    empty = tmp_path / "secret"
    empty.mkdir()
    (empty / "README").write_text("not a certificate")
    raw = {"clusters": [{"name": "c", "endpoints": ["https://a:2379"], "tls": {"dir": str(empty)}}]}
    assert errors_of(raw) == [
        f"clusters[0].tls.dir: {str(empty)!r} holds none of ca.crt, tls.crt, tls.key"
    ]
