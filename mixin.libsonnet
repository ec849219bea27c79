// etcd-inspector monitoring mixin: alerts, recording rules and Grafana dashboards for etcd
// and etcd-inspector, composed the way monitoring mixins are, plus the Prometheus-Operator
// manifests and scrape configs `etcd-inspector generate` writes.
//
//   local etcdInspector = (import 'etcd-inspector/mixin.libsonnet') + {
//     _config+:: { etcd_selector: 'job="etcd"', etcd_instance_labels: 'instance, pod' },
//   };
//   etcdInspector.prometheusAlerts, etcdInspector.prometheusRules, etcdInspector.grafanaDashboards
(import 'config.libsonnet') +
(import 'rules/alerts.libsonnet') +
(import 'rules/runbooks.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'dashboards/dashboards.libsonnet') +
(import 'servicemonitors/manifests.libsonnet') +
(import 'servicemonitors/chaos.libsonnet')
