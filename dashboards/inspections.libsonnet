// etcd-inspector inspections: consistency across members, largest values and prefixes, hot
// keys and prefixes, quota headroom with its projection, and the health of the probes.
local p = import 'lib/panels.libsonnet';

{
  local c = $._config,
  // Selectors: the chosen cluster, and the chosen cluster and members.
  local s = '%s, cluster=~"$cluster"' % c.exporter_selector,
  local sm = s + ', member=~"$member"',
  local q(template) = template % { s: s, sm: sm },
  local noYes = p.boolMapping('no', 'yes', good=0),
  local oneIsGood = [{ color: 'green', value: null }, { color: 'red', value: 2 }],

  grafanaDashboards+:: {
    'etcd-inspector-inspections.json': p.dashboard(
      uid='etcd-inspector-inspections',
      title='etcd-inspector / Inspections',
      description='What etcd-inspector finds: drift between members, big values, hot keys, quota headroom, probe health.',
      tags=['etcd', 'etcd-inspector'],
      variables=[
        p.datasourceVariable(),
        p.queryVariable('cluster', 'Cluster', 'label_values(etcd_inspector_member_up{%s}, cluster)' % c.exporter_selector, c.dashboard_var_refresh, multi=false),
        p.queryVariable('member', 'Member', 'label_values(etcd_inspector_member_up{%s, cluster=~"$cluster"}, member)' % c.exporter_selector, c.dashboard_var_refresh),
      ],
      panels=[
        p.row('Consistency across members'),
        p.stat('Consistent', [p.target(q('min(etcd_inspector_consistent{%(s)s})'))],
               description='1 when all members agree at the pinned revision.',
               mappings=p.boolMapping('no', 'yes', good=1)),
        p.stat('KV hash mismatch', [p.target(q('max(etcd_inspector_hash_mismatch{%(s)s})'))], mappings=noYes),
        p.stat('Distinct leaders', [p.target(q('max(etcd_inspector_leader_distinct{%(s)s})'))],
               description='How many different leaders the members name; healthy is 1.', steps=oneIsGood),
        p.stat('Distinct cluster IDs', [p.target(q('max(etcd_inspector_cluster_id_distinct{%(s)s})'))],
               description='Healthy is 1.', steps=oneIsGood),
        p.stat('Members up', [p.target('sum(cluster:etcd_inspector_members_up:sum{cluster=~"$cluster"})')]),
        p.stat('Pinned revision', [p.target(q('max(etcd_inspector_consistency_revision{%(s)s})'))],
               description='Revision at which the members were last compared.'),
        p.timeseries('Differences between members', [
          p.target(q('max(etcd_inspector_key_count_diff{%(s)s})'), 'key count'),
          p.target(q('max(etcd_inspector_revision_diff{%(s)s})'), 'revision'),
          p.target(q('max(etcd_inspector_raft_applied_index_diff{%(s)s})'), 'raft applied index'),
        ], width=12, description='Largest minus smallest value across members; the key count is compared at the pinned revision and must be 0.'),
        p.timeseries('Member lag', [
          p.target('max by (member) (cluster_member:etcd_inspector_member_revision:lag{cluster=~"$cluster", member=~"$member"})', '{{member}} revisions'),
          p.target('max by (member) (cluster_member:etcd_inspector_member_raft_applied_index:lag{cluster=~"$cluster", member=~"$member"})', '{{member}} applied entries'),
        ], width=12, description='How far each member trails the most advanced one.'),
        p.timeseries('Keys per member at the pinned revision', [p.target(q('max by (member) (etcd_inspector_member_keys{%(sm)s})'), '{{member}}')], width=12),
        p.table('Members', [p.target(q('max by (member, member_id, version, endpoint) (etcd_inspector_member_info{%(sm)s})'), instant=true)], width=12),

        p.row('Largest values and prefixes'),
        p.stat('Values over threshold', [p.target(q('max(etcd_inspector_big_values{%(s)s})'))],
               steps=[{ color: 'green', value: null }, { color: 'orange', value: 1 }]),
        p.stat('Bytes in big values', [p.target(q('max(etcd_inspector_big_values_bytes{%(s)s})'))], unit='bytes'),
        p.stat('Keys scanned', [p.target(q('max(etcd_inspector_scan_keys{%(s)s})'))],
               description='Progress of the current value scan.'),
        p.timeseries('Value size', [
          p.target('max(cluster:etcd_inspector_value_size_bytes:p50{cluster=~"$cluster"})', 'p50'),
          p.target('max(cluster:etcd_inspector_value_size_bytes:p99{cluster=~"$cluster"})', 'p99'),
        ], unit='bytes', width=12),
        p.table('Largest values', [p.target(q('topk(20, max by (key) (etcd_inspector_value_size_top_bytes{%(s)s}))'), instant=true)], unit='bytes'),
        p.table('Largest prefixes by bytes', [p.target(q('topk(20, max by (prefix) (etcd_inspector_prefix_bytes{%(s)s}))'), instant=true)], unit='bytes'),
        p.table('Largest prefixes by keys', [p.target(q('topk(20, max by (prefix) (etcd_inspector_prefix_keys{%(s)s}))'), instant=true)]),
        p.table('Most modified keys', [p.target(q('topk(20, max by (key) (etcd_inspector_key_version_top{%(s)s}))'), instant=true)],
                description='Keys with the highest version (number of modifications since creation).'),

        p.row('Hot keys and prefixes'),
        p.table('Hot keys', [p.target(q('topk(20, max by (key) (etcd_inspector_hot_key_writes_per_second{%(s)s}))'), instant=true)], unit='wps'),
        p.timeseries('Writes per prefix', [p.target('topk(10, max by (prefix, op) (cluster_prefix_op:etcd_inspector_prefix_writes:rate5m{cluster=~"$cluster"}))', '{{prefix}} {{op}}')], unit='wps', width=12),
        p.timeseries('Watch resumed after compaction', [p.target(q('max(increase(etcd_inspector_watch_missed_windows_total{%(s)s}[$__rate_interval]))'), 'missed windows')], width=24,
                     description='The hot-key watch fell behind compaction and resumed; writes in the gap were not counted.'),

        p.row('Quota headroom'),
        p.timeseries('Quota used', [p.target(q('max by (member) (etcd_inspector_quota_used_ratio{%(sm)s})'), '{{member}}')], unit='percentunit', min=0),
        p.timeseries('Quota headroom', [p.target(q('max by (member) (etcd_inspector_quota_headroom_bytes{%(sm)s})'), '{{member}}')], unit='bytes', min=0),
        p.timeseries('Projected time until the quota is reached', [p.target(q('min by (member) (etcd_inspector_quota_exhaustion_seconds{%(sm)s})'), '{{member}}')], unit='s', min=0,
                     description='At the current growth rate; empty while the database does not grow.'),
        p.timeseries('Database size and quota', [
          p.target(q('max by (member) (etcd_inspector_member_db_size_bytes{%(sm)s})'), '{{member}} size'),
          p.target(q('max by (member) (etcd_inspector_member_db_size_in_use_bytes{%(sm)s})'), '{{member}} in use'),
          p.target(q('max by (member) (etcd_inspector_quota_bytes{%(sm)s})'), '{{member}} quota'),
        ], unit='bytes', width=16),
        p.timeseries('In-use share of the database file', [p.target(q('max by (member) (etcd_inspector_db_in_use_ratio{%(sm)s})'), '{{member}}')], unit='percentunit', min=0,
                     description='Low means fragmented: a defragmentation would return the difference.'),

        p.row('Probe health'),
        p.timeseries('Probe success', [p.target(q('min by (probe) (etcd_inspector_probe_success{%(s)s})'), '{{probe}}')], min=0),
        p.timeseries('Probe duration', [p.target(q('max by (probe) (etcd_inspector_probe_duration_seconds{%(s)s})'), '{{probe}}')], unit='s'),
        p.timeseries('Time since last success', [p.target(q('time() - max by (probe) (etcd_inspector_probe_last_success_timestamp_seconds{%(s)s})'), '{{probe}}')], unit='s'),
        p.timeseries('Member reachable', [p.target(q('min by (member) (etcd_inspector_member_up{%(sm)s})'), '{{member}}')], min=0),
        p.timeseries('Member fetch duration', [p.target(q('max by (member) (etcd_inspector_member_scrape_duration_seconds{%(sm)s})'), '{{member}}')], unit='s'),
        p.timeseries('Member fetch errors', [p.target(q('sum by (member, reason) (rate(etcd_inspector_member_scrape_errors_total{%(sm)s}[$__rate_interval]))'), '{{member}} {{reason}}')], unit='reqps'),
      ],
    ),
  },
}
