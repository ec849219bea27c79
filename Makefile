# The two commands a newcomer needs (see README.md):
#   make demo   start a local 3-member etcd cluster with sample data and the exporter on localhost
#   make test   run the whole test suite against real etcd, promtool and Prometheus
.PHONY: demo test lint bootstrap bench render

bootstrap:
	@scripts/bootstrap

demo: bootstrap
	.venv/bin/etcd-inspector demo

test: bootstrap
	.venv/bin/ruff check exporter tests bench
	.venv/bin/pytest $(PYTEST_ARGS)

lint: bootstrap
	.venv/bin/ruff check exporter tests bench

render: bootstrap
	.venv/bin/python -m etcd_inspector.mixin

bench: bootstrap
	.venv/bin/python bench/run_all.py
