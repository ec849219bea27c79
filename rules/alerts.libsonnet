// Alerts. Group `etcd` carries every alert of the upstream etcd mixin under the same name and
// meaning (see docs/mixin.md for what changed and why); group `etcd-inspector` alerts on the
// exporter's inspections. Selectors and thresholds come from config.libsonnet; runbook_url is
// added to every alert in rules/runbooks.libsonnet.
{
  local c = $._config,

  // How descriptions name a cluster and a member. `or` picks the first non-empty label, so
  // members scraped directly without a cluster label are named by their job, as upstream did.
  local clusterName = '{{ or $labels.%s $labels.job }}' % c.clusterLabel,
  local memberName =
    if c.etcd_member_label == 'instance' then '{{ $labels.instance }}'
    else '{{ or $labels.%s $labels.instance }}' % c.etcd_member_label,
  local etcdCluster = 'etcd cluster "%s"' % clusterName,
  local inspectedCluster = 'etcd cluster "{{ $labels.cluster }}"',
  // The labels that tell one member's series from another's (for `or on (...)` fallbacks).
  local memberOn = std.join(', ', std.set(
    [std.stripChars(l, ' ') for l in std.split(c.etcd_instance_labels, ',')] + [c.clusterLabel, 'job']
  )),

  // A Prometheus duration ("15m", "4h") or a number of seconds in words, for descriptions.
  local words(d) =
    local units = { s: 'second', m: 'minute', h: 'hour', d: 'day' };
    local n = if std.isNumber(d) then (
      if d % 3600 == 0 then [d / 3600, 'h'] else if d % 60 == 0 then [d / 60, 'm'] else [d, 's']
    ) else [std.parseInt(std.substr(d, 0, std.length(d) - 1)), d[std.length(d) - 1]];
    '%d %s%s' % [n[0], units[n[1]], if n[0] == 1 then '' else 's'],

  // Values substituted into the expressions: the config plus a few derived strings.
  local x = c {
    member_up: c.etcd_member_up_series,
    network_failure_range: '%ds' % (c.scrape_interval_seconds * 4),
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'etcd',
        rules: [
          {
            // Down members counted two ways, the larger count wins: members whose liveness
            // series says 0, and peers the others fail to reach (a member missing from the
            // scrape). Upstream joins them with a bare `or`, which drops the peer count
            // whenever the first count exists with the same labels, even at 0; the `signal`
            // label keeps both until max.
            alert: 'etcdMembersDown',
            expr: |||
              max without (endpoint, signal) (
                label_replace(sum without (%(etcd_instance_labels)s) ((%(member_up)s) == bool 0), "signal", "up", "", "")
              or
                label_replace(count without (To) (
                  sum without (%(etcd_instance_labels)s) (rate(etcd_network_peer_sent_failures_total{%(etcd_selector)s}[%(network_failure_range)s])) > %(members_down_peer_failures_per_second)s
                ), "signal", "peer_failures", "", "")
              )
              > 0
            ||| % x,
            'for': '20m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'etcd cluster members are down.',
              description: '%s: members are down ({{ $value }}).' % etcdCluster,
            },
          },
          {
            alert: 'etcdInsufficientMembers',
            expr: |||
              sum without (%(etcd_instance_labels)s) ((%(member_up)s) == bool 1)
              <
              ((count without (%(etcd_instance_labels)s) (%(member_up)s) + 1) / 2)
            ||| % x,
            'for': '3m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'etcd cluster has insufficient number of members.',
              description: '%s: insufficient members ({{ $value }} up), fewer than a quorum; the cluster refuses writes and linearizable reads.' % etcdCluster,
            },
          },
          {
            alert: 'etcdNoLeader',
            expr: |||
              etcd_server_has_leader{%(etcd_selector)s} == 0
            ||| % x,
            'for': '1m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'etcd cluster has no leader.',
              description: '%s: member %s has no leader.' % [etcdCluster, memberName],
            },
          },
          {
            alert: 'etcdHighNumberOfLeaderChanges',
            expr: |||
              increase((max without (%(etcd_instance_labels)s) (etcd_server_leader_changes_seen_total{%(etcd_selector)s}) or 0*absent(etcd_server_leader_changes_seen_total{%(etcd_selector)s}))[%(leader_changes_window)s:1m]) >= %(leader_changes_max)s
            ||| % x,
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'etcd cluster has high number of leader changes.',
              description: '%s: {{ $value }} leader changes within the last %s. Frequent elections may be a sign of insufficient resources, high network latency, or disruptions by other components and should be investigated.' % [etcdCluster, words(c.leader_changes_window)],
            },
          },
        ] + [
          {
            alert: 'etcdHighNumberOfFailedGRPCRequests',
            expr: |||
              100 * sum without (grpc_type, grpc_code) (rate(grpc_server_handled_total{%(etcd_selector)s, %(grpc_failure_scope_selector)s, grpc_code=~"%(grpc_failure_codes)s"}[5m]))
                /
              sum without (grpc_type, grpc_code) (rate(grpc_server_handled_total{%(etcd_selector)s, %(grpc_failure_scope_selector)s}[5m]))
                > %(threshold)s
            ||| % (x { threshold: level.threshold }),
            'for': level['for'],
            labels: { severity: level.severity },
            annotations: {
              summary: 'etcd cluster has high number of failed grpc requests.',
              description: '%s: {{ $value | humanize }}%% of requests for {{ $labels.grpc_method }} failed on etcd instance %s.' % [etcdCluster, memberName],
            },
          }
          for level in [
            { severity: 'warning', threshold: c.grpc_failed_percent_warning, 'for': '10m' },
            { severity: 'critical', threshold: c.grpc_failed_percent_critical, 'for': '5m' },
          ]
        ] + [
          {
            alert: 'etcdGRPCRequestsSlow',
            // etcd 3.7's always-on etcd_server_request_duration_seconds{type,success} where a
            // member has it; else (3.4-3.6) grpc_server_handling_seconds, --metrics=extensive.
            expr: |||
              (
                histogram_quantile(0.99, sum without (success) (rate(etcd_server_request_duration_seconds_bucket{%(etcd_selector)s}[5m])))
                or on (%(member_on)s)
                histogram_quantile(0.99, sum without (grpc_type) (rate(grpc_server_handling_seconds_bucket{%(etcd_selector)s, grpc_method!="Defragment", grpc_type="unary"}[5m])))
              )
              > %(grpc_slow_p99_seconds)s
            ||| % (x { member_on: memberOn }),
            'for': '10m',
            // A warning, not etcd's upstream critical: it names an effect. A leader's slow peer
            // links make every member's writes slow, so it fired for all three members (the
            // healthy ones too) before the alert that names the cause (docs/drills.md).
            labels: { severity: 'warning' },
            annotations: {
              summary: 'etcd grpc requests are slow.',
              description: '%s: 99th percentile of gRPC requests is {{ $value | humanizeDuration }} on etcd instance %s for {{ or $labels.type $labels.grpc_method }} method. This is an effect: look for the cause in etcdHighFsyncDurations, etcdHighCommitDurations or etcdMemberCommunicationSlow (and `etcd-inspector inspect`). Before etcd 3.7 this alert needs etcd started with --metrics=extensive (grpc_server_handling_seconds; 3.7 has etcd_server_request_duration_seconds always); etcdHighNumberOfSlowApplies works without it.' % [etcdCluster, memberName],
            },
          },
          {
            alert: 'etcdHighNumberOfSlowApplies',
            expr: |||
              rate(etcd_server_slow_apply_total{%(etcd_selector)s}[5m]) > %(slow_applies_per_second)s
            ||| % x,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'etcd members apply requests slowly.',
              description: '%s: etcd instance %s applied {{ $value | humanize }} requests per second slower than expected (100ms) over the last 5 minutes, usually because of a slow disk or an overloaded member. Unlike etcdGRPCRequestsSlow this needs no --metrics=extensive.' % [etcdCluster, memberName],
            },
          },
          {
            // `To` is the peer's hex member ID; etcd_server_id (etcd >= 3.4) maps it to the
            // member's name label (`to_member`). A peer whose etcd_server_id is not scraped
            // (down, older etcd) keeps the alert, named by its ID only (`or ignoring`).
            alert: 'etcdMemberCommunicationSlow',
            expr: |||
              (
                histogram_quantile(0.99, rate(etcd_network_peer_round_trip_time_seconds_bucket{%(etcd_selector)s}[5m]))
                  * on (To) group_left (to_member)
                max by (To, to_member) (
                  label_replace(label_replace(etcd_server_id{%(etcd_selector)s}, "To", "$1", "server_id", "(.+)"), "to_member", "$1", "%(etcd_member_label)s", "(.+)")
                )
                or ignoring (to_member)
                histogram_quantile(0.99, rate(etcd_network_peer_round_trip_time_seconds_bucket{%(etcd_selector)s}[5m]))
              )
              > %(peer_rtt_p99_seconds)s
            ||| % x,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'etcd cluster member communication is slow.',
              description: '%s: member communication with {{ with $labels.to_member }}member {{ . }} (ID {{ $labels.To }}){{ else }}peer ID {{ $labels.To }}{{ end }} is taking {{ $value | humanizeDuration }} on etcd instance %s.' % [etcdCluster, memberName],
            },
          },
          {
            alert: 'etcdHighNumberOfFailedProposals',
            expr: |||
              rate(etcd_server_proposals_failed_total{%(etcd_selector)s}[%(failed_proposals_window)s]) > %(failed_proposals_per_second)s
            ||| % x,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'etcd cluster has high number of proposal failures.',
              description: '%s: {{ $value | humanize }} proposal failures per second over the last %s on etcd instance %s.' % [etcdCluster, words(c.failed_proposals_window), memberName],
            },
          },
        ] + [
          {
            alert: 'etcdHighFsyncDurations',
            expr: |||
              histogram_quantile(0.99, rate(etcd_disk_wal_fsync_duration_seconds_bucket{%(etcd_selector)s}[5m]))
              > %(threshold)s
            ||| % (x { threshold: level.threshold }),
            'for': '10m',
            labels: { severity: level.severity },
            annotations: {
              summary: 'etcd cluster 99th percentile fsync durations are too high.',
              description: '%s: 99th percentile fsync durations are {{ $value | humanizeDuration }} on etcd instance %s.' % [etcdCluster, memberName],
            },
          }
          for level in [
            { severity: 'warning', threshold: c.fsync_p99_seconds_warning },
            { severity: 'critical', threshold: c.fsync_p99_seconds_critical },
          ]
        ] + [
          {
            alert: 'etcdHighCommitDurations',
            expr: |||
              histogram_quantile(0.99, rate(etcd_disk_backend_commit_duration_seconds_bucket{%(etcd_selector)s}[5m]))
              > %(commit_p99_seconds_warning)s
            ||| % x,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'etcd cluster 99th percentile commit durations are too high.',
              description: '%s: 99th percentile commit durations {{ $value | humanizeDuration }} on etcd instance %s.' % [etcdCluster, memberName],
            },
          },
          {
            alert: 'etcdDatabaseQuotaLowSpace',
            expr: |||
              (last_over_time(etcd_mvcc_db_total_size_in_bytes{%(etcd_selector)s}[5m]) / last_over_time(etcd_server_quota_backend_bytes{%(etcd_selector)s}[5m]))*100 > %(quota_low_space_percent)s
            ||| % x,
            'for': '10m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'etcd cluster database is running full.',
              description: '%s: database size is {{ $value | humanize }}%% of the defined quota on etcd instance %s, please defrag or increase the quota as the writes to etcd will be disabled when it is full.' % [etcdCluster, memberName],
            },
          },
          {
            alert: 'etcdExcessiveDatabaseGrowth',
            expr: |||
              predict_linear(etcd_mvcc_db_total_size_in_bytes{%(etcd_selector)s}[%(db_growth_window)s], %(db_growth_horizon_seconds)s) > etcd_server_quota_backend_bytes{%(etcd_selector)s}
            ||| % x,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'etcd cluster database growing very fast.',
              description: '%s: Predicting the database reaches its quota in the next %s, based on write observations within the past %s on etcd instance %s, please check as it might be disruptive.' % [etcdCluster, words(c.db_growth_horizon_seconds), words(c.db_growth_window), memberName],
            },
          },
          {
            alert: 'etcdDatabaseHighFragmentationRatio',
            expr: |||
              (last_over_time(etcd_mvcc_db_total_size_in_use_in_bytes{%(etcd_selector)s}[5m]) / last_over_time(etcd_mvcc_db_total_size_in_bytes{%(etcd_selector)s}[5m])) < %(fragmentation_in_use_ratio)s and etcd_mvcc_db_total_size_in_use_in_bytes{%(etcd_selector)s} > %(fragmentation_min_in_use_bytes)s
            ||| % x,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'etcd database size in use is less than %d%% of the actual allocated storage.' % (c.fragmentation_in_use_ratio * 100),
              description: '%s: database size in use on instance %s is {{ $value | humanizePercentage }} of the actual allocated disk space, please run defragmentation (e.g. etcdctl defrag) to retrieve the unused fragmented disk space.' % [etcdCluster, memberName],
            },
          },
        ],
      },
      {
        name: 'etcd-inspector',
        rules: [
          {
            alert: 'EtcdInspectorDown',
            expr: |||
              up{%(exporter_selector)s} == 0
            ||| % x,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Prometheus cannot scrape etcd-inspector.',
              description: 'Prometheus cannot scrape etcd-inspector at {{ $labels.instance }} (job {{ $labels.job }}): the inspections, and every etcd alert when members are scraped through the exporter, are blind.',
            },
          },
          {
            alert: 'EtcdInspectorMemberUnreachable',
            expr: |||
              etcd_inspector_member_up{%(exporter_selector)s} == 0
            ||| % x,
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'etcd-inspector cannot reach an etcd member.',
              description: '%s: etcd-inspector at {{ $labels.instance }} cannot reach member {{ $labels.member }} (status probe or metrics fetch fails); etcd_inspector_member_scrape_errors_total says why.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorDataInconsistent',
            expr: |||
              max without (%(exporter_instance_labels)s) (etcd_inspector_hash_mismatch{%(exporter_selector)s}) == 1
              or
              max without (%(exporter_instance_labels)s) (etcd_inspector_key_count_diff{%(exporter_selector)s}) > 0
            ||| % x,
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'etcd members hold different data at the same revision.',
              description: '%s: members disagree on the key-value hash or the key count at the same revision. A member is corrupt: find it with `etcdctl endpoint hashkv --cluster`, then replace it from a healthy member.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorMemberRevisionLag',
            expr: |||
              cluster_member:etcd_inspector_member_revision:lag > %(revision_lag_max)s
            ||| % x,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'An etcd member trails the others in revision.',
              description: '%s: member {{ $labels.member }} is {{ $value }} revisions behind the most advanced member.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorMemberAppliedIndexLag',
            expr: |||
              cluster_member:etcd_inspector_member_raft_applied_index:lag > %(applied_index_lag_max)s
            ||| % x,
            'for': '10m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'An etcd member applies raft entries behind the others.',
              description: '%s: member {{ $labels.member }} has applied {{ $value }} fewer raft entries than the most advanced member; it is slow (disk, CPU) or cut off from the leader.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorLearnerBehind',
            expr: |||
              max without (%(exporter_instance_labels)s) (etcd_inspector_learner_lag_entries{%(exporter_selector)s}) > %(learner_lag_entries_max)s
            ||| % x,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'An etcd learner does not catch up with the leader.',
              description: '%s: learner {{ $labels.member }} is {{ $value }} raft entries behind the leader; it cannot be promoted until it catches up.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorLearnerDatabaseLarge',
            expr: |||
              (
                max without (%(exporter_instance_labels)s) (etcd_inspector_member_db_size_bytes{%(exporter_selector)s})
                and on (cluster, member)
                max without (%(exporter_instance_labels)s) (etcd_inspector_member_is_learner{%(exporter_selector)s}) == 1
              )
              > on (cluster) group_left
              %(learner_db_size_ratio_max)s * max by (cluster) (
                max without (%(exporter_instance_labels)s) (etcd_inspector_member_db_size_bytes{%(exporter_selector)s})
                and on (cluster, member)
                max without (%(exporter_instance_labels)s) (etcd_inspector_member_is_learner{%(exporter_selector)s}) == 0
              )
            ||| % x,
            'for': '30m',
            labels: { severity: 'warning' },
            annotations: {
              summary: "An etcd learner's database is much larger than the voters'.",
              description: "%s: learner {{ $labels.member }}'s database is {{ $value | humanize1024 }}B, over %s times the largest voter's; a learner cannot be defragmented." % [inspectedCluster, x.learner_db_size_ratio_max],
            },
          },
          {
            alert: 'EtcdInspectorLeaderDisagreement',
            expr: |||
              max without (%(exporter_instance_labels)s) (etcd_inspector_leader_distinct{%(exporter_selector)s}) > 1
            ||| % x,
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'etcd members name different leaders.',
              description: '%s: members name {{ $value }} different leaders; a member is partitioned from the others and may serve stale serializable reads.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorClusterIDMismatch',
            expr: |||
              max without (%(exporter_instance_labels)s) (etcd_inspector_cluster_id_distinct{%(exporter_selector)s}) > 1
            ||| % x,
            'for': '5m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'The endpoints of an etcd cluster belong to different clusters.',
              description: '%s: the configured endpoints report {{ $value }} different cluster IDs; an endpoint points at another cluster, or a member was bootstrapped as a new cluster.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorAlarmActive',
            expr: |||
              max without (%(exporter_instance_labels)s) (etcd_inspector_member_alarm{%(exporter_selector)s, alarm=~"%(alarms_critical)s"}) == 1
            ||| % x,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'An etcd alarm is raised.',
              description: '%s: member {{ $labels.member }} has the {{ $labels.alarm }} alarm raised. NOSPACE: the cluster refuses writes until space is freed (compact, defrag) and the alarm is disarmed. CORRUPT: a member diverged and must be replaced.' % inspectedCluster,
            },
          },
        ] + [
          // One rule per tier of quota_used_ratio_tiers, each with its tier's severity; they
          // fire together above the top tier (Alertmanager's usual inhibition of a warning by
          // the critical alert of the same labels keeps one notification).
          {
            alert: 'EtcdInspectorQuotaHeadroomLow',
            expr: |||
              max without (%(exporter_instance_labels)s) (etcd_inspector_quota_used_ratio{%(exporter_selector)s}) > %(ratio)s
            ||| % (x { ratio: tier.ratio }),
            'for': '15m',
            labels: { severity: tier.severity },
            annotations: {
              summary: 'An etcd member is running out of backend quota.',
              description: '%s: member {{ $labels.member }} uses {{ $value | humanizePercentage }} of its backend quota (%s tier: over %d%%); at 100%% etcd raises NOSPACE and refuses writes. Compact and defragment, or raise --quota-backend-bytes.' % [inspectedCluster, tier.severity, std.floor(tier.ratio * 100 + 0.5)],
            },
          }
          for tier in c.quota_used_ratio_tiers
        ] + [
          {
            alert: 'EtcdInspectorQuotaExhaustionProjected',
            expr: |||
              min without (%(exporter_instance_labels)s) (etcd_inspector_quota_exhaustion_seconds{%(exporter_selector)s}) < %(quota_exhaustion_horizon_seconds)s
            ||| % x,
            'for': '30m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'An etcd member is projected to reach its backend quota soon.',
              description: '%s: member {{ $labels.member }} reaches its backend quota in about {{ $value | humanizeDuration }} at the current growth rate.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorCompactionStalled',
            expr: |||
              max without (%(exporter_instance_labels)s) (etcd_inspector_revisions_since_compaction{%(exporter_selector)s}) > %(revisions_since_compaction_max)s
            ||| % x,
            'for': '30m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'etcd keeps a long history: compaction is not running.',
              description: '%s: {{ $value | humanize }} revisions since the last compaction. Every write is kept until etcd compacts, so the database grows towards its quota; enable --auto-compaction-retention or compact (`etcdctl compact`), then defragment.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorLeasesHigh',
            expr: |||
              max without (%(exporter_instance_labels)s) (etcd_inspector_leases{%(exporter_selector)s}) > %(leases_max)s
            ||| % x,
            'for': '30m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'An etcd cluster holds an unusually large number of leases.',
              description: '%s: {{ $value | humanize }} active leases. Leaked leases (granted per write and never revoked) keep their keys alive and fill the database; find the client granting them (`etcdctl lease list`, `etcdctl lease timetolive --keys ID`).' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorLeasesGrowing',
            expr: |||
              (
                min without (%(exporter_instance_labels)s) (min_over_time(etcd_inspector_leases{%(exporter_selector)s}[%(leases_growth_span)s]))
                - max without (%(exporter_instance_labels)s) (max_over_time(etcd_inspector_leases{%(exporter_selector)s}[%(leases_growth_span)s] offset %(leases_growth_window)s))
              ) > %(leases_growth_max)s
            ||| % x,
            'for': x.leases_growth_for,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'The number of leases in an etcd cluster keeps growing.',
              description: '%s: the active leases rose by at least {{ $value | humanize }} within %s, and have kept rising for %s. A client that grants leases and never revokes them (or keeps them alive) leaks them until the database fills; find it (`etcdctl lease list`, `etcdctl lease timetolive --keys ID`) before the count reaches leases_max.' % [inspectedCluster, x.leases_growth_window, x.leases_growth_for],
            },
          },
          {
            alert: 'EtcdInspectorBigValues',
            expr: |||
              max without (%(exporter_instance_labels)s) (etcd_inspector_big_values{%(exporter_selector)s}) > %(big_values_max)s
            ||| % x,
            'for': '30m',
            labels: { severity: 'info' },
            annotations: {
              summary: 'etcd holds values over the big-value threshold.',
              description: '%s: {{ $value }} values are over the big-value threshold; large values slow down watches, snapshots and defragmentation. The Inspections dashboard lists the largest keys.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorHotKey',
            expr: |||
              max without (%(exporter_instance_labels)s) (etcd_inspector_hot_key_writes_per_second{%(exporter_selector)s}) > %(hot_key_writes_per_second)s
            ||| % x,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'An etcd key is written very often.',
              description: '%s: key {{ $labels.key }} is written {{ $value | humanize }} times per second; every write adds a revision to compact and an event to every watcher of the key.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorWatchBehind',
            expr: |||
              etcd_inspector_watch_lag_revisions{%(exporter_selector)s} > %(watch_lag_max)s
            ||| % x,
            'for': c.watch_behind_for,
            labels: { severity: 'warning' },
            annotations: {
              summary: "etcd-inspector's hot-key watch is behind the cluster.",
              description: '%s: the hot-key watch of etcd-inspector at {{ $labels.instance }} is {{ $value }} revisions behind the most advanced member; write counts and hot keys are incomplete until it catches up. The exporter log says why (a frozen member, a backlog of big values).' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorPrefixKeyGrowth',
            // A prefix with no series a window ago (new since) counts from 0, but only while the
            // cluster had prefix series then: a freshly started exporter has no history at all,
            // and its big prefixes must not all look new.
            expr: |||
              max without (%(exporter_instance_labels)s) (etcd_inspector_prefix_keys{%(exporter_selector)s})
              - (
                max without (%(exporter_instance_labels)s) (etcd_inspector_prefix_keys{%(exporter_selector)s} offset %(prefix_key_growth_window)s)
                or
                (
                  0 * max without (%(exporter_instance_labels)s) (etcd_inspector_prefix_keys{%(exporter_selector)s})
                  and ignoring (prefix)
                  max without (%(exporter_instance_labels)s, prefix) (etcd_inspector_prefix_keys{%(exporter_selector)s} offset %(prefix_key_growth_window)s)
                )
              )
              > %(prefix_key_growth_max)s
            ||| % x,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'An etcd prefix is gaining keys fast.',
              description: '%s: prefix {{ $labels.prefix }} gained {{ $value }} keys within the last %s; a client may be leaking keys (leases, events, locks).' % [inspectedCluster, words(c.prefix_key_growth_window)],
            },
          },
        ] + [
          {
            alert: 'EtcdInspectorCertificateExpiry',
            expr: |||
              min without (%(exporter_instance_labels)s) (etcd_inspector_cert_expiry_timestamp_seconds{%(exporter_selector)s}) - time() < %(certificate_expiry_warning_days)s * 86400
            ||| % x,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'A certificate between the exporter and etcd expires soon.',
              description: '%s: the {{ $labels.cert }} certificate{{ with $labels.member }} of member {{ . }}{{ end }} expires in {{ $value | humanizeDuration }}. Expired etcd certificates stop the control plane: renew it (kubeadm certs renew, cert-manager) before then.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorCertificateExpiry',
            expr: |||
              min without (%(exporter_instance_labels)s) (etcd_inspector_cert_expiry_timestamp_seconds{%(exporter_selector)s}) - time() < %(certificate_expiry_critical_days)s * 86400
            ||| % x,
            'for': '15m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'A certificate between the exporter and etcd is about to expire.',
              description: '%s: the {{ $labels.cert }} certificate{{ with $labels.member }} of member {{ . }}{{ end }} expires in {{ $value | humanizeDuration }}. Expired etcd certificates stop the control plane: renew it now.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorBackupMissing',
            expr: |||
              max without (%(exporter_instance_labels)s) (etcd_inspector_backup_snapshots{%(exporter_selector)s}) == 0
            ||| % x,
            'for': '%(backup_alert_for)s' % x,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'An etcd backup location holds no snapshot.',
              description: '%s: backup location {{ $labels.location }} holds no snapshot (or does not exist); a lost cluster could not be restored from it.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorBackupTooOld',
            expr: |||
              time() - max without (%(exporter_instance_labels)s) (etcd_inspector_backup_last_timestamp_seconds{%(exporter_selector)s}) > %(backup_max_age_seconds)s
            ||| % x,
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'The newest etcd backup is too old.',
              description: '%s: the newest snapshot in backup location {{ $labels.location }} is {{ $value | humanizeDuration }} old; snapshots have stopped being written.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorBackupNotWhole',
            expr: |||
              min without (%(exporter_instance_labels)s) (etcd_inspector_backup_valid{%(exporter_selector)s}) == 0
            ||| % x,
            'for': '%(backup_alert_for)s' % x,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'The newest etcd backup is not whole.',
              description: '%s: the newest snapshot in backup location {{ $labels.location }} is not whole (its SHA-256 does not match or it is not a complete bbolt file); it would not restore. `etcd-inspector inspect` says why.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorBackupDataMismatch',
            expr: |||
              min without (%(exporter_instance_labels)s) (etcd_inspector_backup_matches_cluster{%(exporter_selector)s}) == 0
            ||| % x,
            'for': '%(backup_alert_for)s' % x,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'The newest etcd backup does not hold the cluster\'s data.',
              description: '%s: the newest snapshot in backup location {{ $labels.location }} holds a different number of keys than the cluster had at its revision, or is at a revision the cluster has not reached: it is another cluster\'s backup.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorBackupRestoreFailed',
            expr: |||
              min without (%(exporter_instance_labels)s) (etcd_inspector_backup_restore_success{%(exporter_selector)s}) == 0
            ||| % x,
            'for': '%(backup_alert_for)s' % x,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'The restore drill of the newest etcd backup failed.',
              description: '%s: restoring the newest snapshot in backup location {{ $labels.location }} into a throwaway etcd failed; `etcd-inspector inspect` says why.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorProbeFailing',
            expr: |||
              etcd_inspector_probe_success{%(exporter_selector)s} == 0
            ||| % x,
            'for': '15m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'An etcd-inspector probe keeps failing.',
              description: '%s: probe {{ $labels.probe }} of etcd-inspector at {{ $labels.instance }} has failed for 15 minutes; its metrics are stale. The exporter log says why.' % inspectedCluster,
            },
          },
          {
            alert: 'EtcdInspectorProbeStale',
            expr: std.join('\nor\n', [
              'time() - etcd_inspector_probe_last_success_timestamp_seconds{%s, probe="%s"} > %d' % [c.exporter_selector, probe, c.probe_stale_seconds[probe]]
              for probe in std.objectFields(c.probe_stale_seconds)
            ]) + '\n',
            'for': '5m',
            labels: { severity: 'warning' },
            annotations: {
              summary: 'An etcd-inspector probe has not succeeded for too long.',
              description: '%s: probe {{ $labels.probe }} of etcd-inspector at {{ $labels.instance }} last succeeded {{ $value | humanizeDuration }} ago.' % inspectedCluster,
            },
          },
        ],
      },
    ],
  },
}
