// etcd overview: the etcd mixin's panels (fixed where upstream plotted the wrong series) plus
// keys, watchers and WAL fsync latency. Works for members scraped directly and through the
// exporter: the member variable uses etcd_member_label (instance or member).
local p = import 'lib/panels.libsonnet';

{
  local c = $._config,
  local m = c.etcd_member_label,
  // Selector of every query: the etcd series of the chosen cluster and members.
  local s = '%s, %s=~"$cluster", %s=~"$member"' % [c.etcd_selector, c.clusterLabel, m],
  local q(template) = template % { s: s, m: m, failure_codes: c.grpc_failure_codes },
  local byMember = '{{%s}}' % m,

  grafanaDashboards+:: {
    'etcd-inspector-overview.json': p.dashboard(
      uid='etcd-inspector-overview',
      title='etcd-inspector / Overview',
      description='etcd members: leader, keys, watchers, requests, disk, raft, traffic, memory.',
      tags=['etcd', 'etcd-inspector'],
      variables=[
        p.datasourceVariable(),
        p.queryVariable('cluster', 'Cluster', 'label_values(etcd_server_has_leader{%s}, %s)' % [c.etcd_selector, c.clusterLabel], c.dashboard_var_refresh, multi=false),
        p.queryVariable('member', 'Member', 'label_values(etcd_server_has_leader{%s, %s=~"$cluster"}, %s)' % [c.etcd_selector, c.clusterLabel, m], c.dashboard_var_refresh),
      ],
      panels=[
        p.row('Cluster'),
        p.stat('Has leader', [p.target(q('min(etcd_server_has_leader{%(s)s})'))],
               description='1 when every selected member knows a leader.',
               mappings=p.boolMapping('no', 'yes', good=1)),
        p.stat('Members reporting', [p.target(q('count(max by (%(m)s) (etcd_server_has_leader{%(s)s}))'))]),
        p.stat('Total keys', [p.target(q('max(etcd_debugging_mvcc_keys_total{%(s)s})'))],
               description='Keys in the key space (etcd_debugging_mvcc_keys_total; every member holds them all).'),
        p.stat('Total watchers', [p.target(q('sum(max by (%(m)s) (etcd_debugging_mvcc_watcher_total{%(s)s}))'))],
               description='Watchers on all selected members (etcd_debugging_mvcc_watcher_total).'),
        p.stat('DB size', [p.target(q('max(etcd_mvcc_db_total_size_in_bytes{%(s)s})'))], unit='bytes'),
        p.stat('Leader changes (1h)', [p.target(q('max(increase(etcd_server_leader_changes_seen_total{%(s)s}[1h]))'))],
               steps=[{ color: 'green', value: null }, { color: 'orange', value: 1 }, { color: 'red', value: 4 }]),

        p.row('Requests and traffic'),
        p.timeseries('RPC rate', [
          p.target(q('sum(rate(grpc_server_started_total{%(s)s, grpc_type="unary"}[$__rate_interval]))'), 'RPC rate'),
          p.target(q('sum(rate(grpc_server_handled_total{%(s)s, grpc_type="unary", grpc_code=~"%(failure_codes)s"}[$__rate_interval]))'), 'RPC failed rate'),
        ], unit='reqps'),
        p.timeseries('Active streams', [
          p.target(q('sum(grpc_server_started_total{%(s)s, grpc_service="etcdserverpb.Watch", grpc_type="bidi_stream"}) - sum(grpc_server_handled_total{%(s)s, grpc_service="etcdserverpb.Watch", grpc_type="bidi_stream"})'), 'Watch streams'),
          p.target(q('sum(grpc_server_started_total{%(s)s, grpc_service="etcdserverpb.Lease", grpc_type="bidi_stream"}) - sum(grpc_server_handled_total{%(s)s, grpc_service="etcdserverpb.Lease", grpc_type="bidi_stream"})'), 'Lease streams'),
        ]),
        // etcd 3.7's always-on request durations by type; before 3.7 the gRPC handling time
        // (--metrics=extensive); without either, the backend commit time, so it is never empty.
        p.timeseries('Request latency p99', [p.target(q(|||
          histogram_quantile(0.99, sum by (%(m)s, type, le) (rate(etcd_server_request_duration_seconds_bucket{%(s)s}[$__rate_interval])))
          or on (%(m)s)
          label_replace(histogram_quantile(0.99, sum by (%(m)s, grpc_method, le) (rate(grpc_server_handling_seconds_bucket{%(s)s, grpc_type="unary", grpc_method!="Defragment"}[$__rate_interval]))), "type", "$1", "grpc_method", "(.*)")
          or on (%(m)s)
          label_replace(histogram_quantile(0.99, sum by (%(m)s, le) (rate(etcd_disk_backend_commit_duration_seconds_bucket{%(s)s}[$__rate_interval]))), "type", "backend commit", "", "")
        |||), byMember + ' {{type}}')], unit='s',
                     description='p99 per request type: etcd_server_request_duration_seconds (etcd 3.7, always on) where a member has it, else grpc_server_handling_seconds per method (etcd started with --metrics=extensive), else the backend commit time (3.4-3.6 without it: a floor of every write).'),
        p.timeseries('Client traffic in', [p.target(q('sum by (%(m)s) (rate(etcd_network_client_grpc_received_bytes_total{%(s)s}[$__rate_interval]))'), byMember)], unit='Bps'),
        p.timeseries('Client traffic out', [p.target(q('sum by (%(m)s) (rate(etcd_network_client_grpc_sent_bytes_total{%(s)s}[$__rate_interval]))'), byMember)], unit='Bps'),
        p.timeseries('Peer traffic in', [p.target(q('sum by (%(m)s) (rate(etcd_network_peer_received_bytes_total{%(s)s}[$__rate_interval]))'), byMember)], unit='Bps'),
        p.timeseries('Peer traffic out', [p.target(q('sum by (%(m)s) (rate(etcd_network_peer_sent_bytes_total{%(s)s}[$__rate_interval]))'), byMember)], unit='Bps'),

        p.row('Disk'),
        p.timeseries('DB size', [
          p.target(q('max by (%(m)s) (etcd_mvcc_db_total_size_in_bytes{%(s)s})'), byMember + ' allocated'),
          p.target(q('max by (%(m)s) (etcd_mvcc_db_total_size_in_use_in_bytes{%(s)s})'), byMember + ' in use'),
        ], unit='bytes'),
        p.timeseries('WAL fsync latency', [
          p.target(q('histogram_quantile(0.99, sum by (%(m)s, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket{%(s)s}[$__rate_interval])))'), byMember + ' p99'),
          p.target(q('histogram_quantile(0.5, sum by (%(m)s, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket{%(s)s}[$__rate_interval])))'), byMember + ' p50'),
        ], unit='s'),
        p.timeseries('Disk sync duration', [
          p.target(q('histogram_quantile(0.99, sum by (%(m)s, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket{%(s)s}[$__rate_interval])))'), byMember + ' WAL fsync'),
          p.target(q('histogram_quantile(0.99, sum by (%(m)s, le) (rate(etcd_disk_backend_commit_duration_seconds_bucket{%(s)s}[$__rate_interval])))'), byMember + ' DB commit'),
        ], unit='s', description='99th percentile of WAL fsync and backend commit durations.'),

        p.row('Raft'),
        p.timeseries('Raft proposals', [
          p.target(q('sum(rate(etcd_server_proposals_committed_total{%(s)s}[$__rate_interval]))'), 'committed'),
          p.target(q('sum(rate(etcd_server_proposals_applied_total{%(s)s}[$__rate_interval]))'), 'applied'),
          p.target(q('sum(rate(etcd_server_proposals_failed_total{%(s)s}[$__rate_interval]))'), 'failed'),
          p.target(q('sum(etcd_server_proposals_pending{%(s)s})'), 'pending'),
        ], description='Proposals per second (committed, applied, failed) and pending proposals.'),
        p.timeseries('Total leader elections per day', [p.target(q('max by (%(m)s) (increase(etcd_server_leader_changes_seen_total{%(s)s}[1d]))'), byMember)]),
        p.timeseries('Peer round trip time', [p.target(q('histogram_quantile(0.99, sum by (%(m)s, To, le) (rate(etcd_network_peer_round_trip_time_seconds_bucket{%(s)s}[$__rate_interval])))'), byMember + ' to {{To}}')], unit='s'),

        p.row('Process'),
        p.timeseries('Memory', [p.target(q('max by (%(m)s) (process_resident_memory_bytes{%(s)s})'), byMember + ' resident memory')], unit='bytes'),
        p.timeseries('CPU', [p.target(q('max by (%(m)s) (rate(process_cpu_seconds_total{%(s)s}[$__rate_interval]))'), byMember)], unit='percentunit'),
        p.table('Feature gates (etcd >= 3.6)', [p.target(q('max by (%(m)s, name, stage) (etcd_server_feature_enabled{%(s)s})'), instant=true)],
                description='etcd_server_feature_enabled: 1 where the feature is on (etcd 3.6 and later; empty on 3.4/3.5, which have no feature gates).'),
        p.timeseries('Slow applies', [p.target(q('sum by (%(m)s) (rate(etcd_server_slow_apply_total{%(s)s}[$__rate_interval]))'), byMember)], unit='reqps',
                     description='Applies slower than 100ms; the request-latency signal that needs no --metrics=extensive.'),
      ],
    ),
  },
}
