"""The README documents every metric, every probe option and every flag the code has."""

import re
from pathlib import Path

import etcd_inspector
from etcd_inspector.cli import build_parser
from etcd_inspector.probes import REGISTRY

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
PACKAGE = Path(etcd_inspector.__file__).parent
NOT_METRICS = {"etcd_inspector_run_deadline"}  # a ContextVar's name


def test_every_metric_name_in_the_code_is_in_the_metrics_table():
    names = set()
    for path in PACKAGE.rglob("*.py"):
        names |= set(re.findall(r"\"(etcd_inspector_[a-z_]+)\"", path.read_text()))
    names -= NOT_METRICS
    assert len(names) > 20  # some are built from parts (status.py), so not all are literal
    # Counters are declared without _total; the table lists the exposed name.
    missing = sorted(
        n for n in names if f"`{n}`" not in README and f"`{n}_total`" not in README
    )
    assert missing == []


def test_every_probe_and_option_is_documented():
    for name, spec in REGISTRY.items():
        assert f"| `{name}`" in README, name
        for option in spec.options_type.model_fields:
            assert f"`{option}`" in README, f"{name}.{option}"


def test_every_flag_is_documented():
    parser = build_parser()
    flags = set()
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            flags |= {o for o in action.option_strings if o.startswith("--") and o != "--help"}
    flags.discard("--exit-after")  # hidden, for tests
    missing = sorted(f for f in flags if f"`{f}`" not in README)
    assert missing == []


def test_the_configuration_example_loads(tmp_path: Path) -> None:
    """The README's Configuration file example is a valid configuration (its file paths made
    real: the loader reads every CA, certificate and key)."""
    import shutil

    import yaml

    from etcd_inspector.config import parse_config
    from etcd_inspector.demo.pki import make_pki

    section = README.split("### Configuration file", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    raw = yaml.safe_load(example)
    pki = make_pki(tmp_path / "pki")
    real = {"ca_file": pki.ca_file, "cert_file": pki.client_cert, "key_file": pki.client_key}
    for cluster in raw["clusters"]:
        for key, path in cluster.get("tls", {}).items():
            local = tmp_path / Path(path).name
            shutil.copy(real[key], local)
            cluster["tls"][key] = str(local)
        password = tmp_path / "password"
        password.write_text("secret\n")
        cluster["password_file"] = str(password)
    config = parse_config(raw, REGISTRY, source="README.md")
    assert [c.name for c in config.clusters] == ["main"]
    assert config.probes["bigvalue"].options.threshold_bytes == 102400
