// Recording rules, named level:metric:operation, for what the alerts and the dashboards reuse.
// Exporter replicas (two replicas, or one sidecar per member) report the same cluster, so
// per-member and per-cluster values are deduplicated with max before they are combined.
{
  local c = $._config,

  prometheusRules+:: {
    groups+: [
      {
        name: 'etcd-inspector.rules',
        rules: [
          {
            record: 'cluster:etcd_inspector_members_up:sum',
            expr: |||
              sum by (cluster) (max by (cluster, member) (etcd_inspector_member_up{%(exporter_selector)s}))
            ||| % c,
          },
          {
            record: 'cluster:etcd_inspector_members:count',
            expr: |||
              count by (cluster) (max by (cluster, member) (etcd_inspector_member_up{%(exporter_selector)s}))
            ||| % c,
          },
        ] + [
          // How far each member trails the most advanced member of its cluster.
          {
            record: 'cluster_member:%s:lag' % metric,
            expr: |||
              max by (cluster) (%(metric)s{%(exporter_selector)s})
              - on (cluster) group_right ()
              max by (cluster, member) (%(metric)s{%(exporter_selector)s})
            ||| % (c { metric: metric }),
          }
          for metric in ['etcd_inspector_member_revision', 'etcd_inspector_member_raft_applied_index']
        ] + [
          {
            record: 'cluster_prefix_op:etcd_inspector_prefix_writes:rate5m',
            expr: |||
              max by (cluster, prefix, op) (rate(etcd_inspector_prefix_writes_total{%(exporter_selector)s}[5m]))
            ||| % c,
          },
        ] + [
          // Quantiles of the value sizes the last scans saw.
          {
            record: 'cluster:etcd_inspector_value_size_bytes:p%d' % (q * 100),
            expr: |||
              histogram_quantile(%(q)s, max by (cluster, le) (etcd_inspector_value_size_bytes_bucket{%(exporter_selector)s}))
            ||| % (c { q: q }),
          }
          for q in [0.5, 0.99]
        ],
      },
    ],
  },
}
