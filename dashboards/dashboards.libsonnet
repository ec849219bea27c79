// Grafana dashboards, keyed by file name; each has a stable uid so links survive re-imports.
(import 'overview.libsonnet') +
(import 'inspections.libsonnet')
