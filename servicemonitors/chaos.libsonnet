// Chaos Mesh experiments for game days on a staging cluster (`etcd-inspector generate` writes
// them to chaos/*.yaml). Each one injects one fault into one etcd member and names, in its
// annotations, the alerts it must trigger: `etcd-inspector drill --experiment FILE` reads them
// and watches Prometheus or Alertmanager while the fault is on.
//
// `chaosDrills` is the one place that maps a fault to its alerts. An alert named here that the
// rules do not define fails the rendering; the fault lasts the longest `for:` of its alerts
// plus chaos_fire_margin_seconds. Selectors and fault sizes are in config.libsonnet (chaos_*).
{
  local c = $._config,

  local seconds(d) =
    local unit = d[std.length(d) - 1];
    std.parseInt(std.substr(d, 0, std.length(d) - 1)) * { s: 1, m: 60, h: 3600 }[unit],
  // The longest `for:` among the rules of that name (an alert may have several levels).
  local alertForSeconds(name) =
    local fors = [
      seconds(rule['for'])
      for group in $.prometheusAlerts.groups
      for rule in group.rules
      if std.objectHas(rule, 'alert') && rule.alert == name
    ];
    if fors == [] then error 'chaos drill expects alert %s, which the rules do not define' % name
    else std.foldl(std.max, fors, 0),
  local goDuration(s) = if s % 60 == 0 then '%dm' % (s / 60) else '%ds' % s,
  local faultSeconds(alerts) =
    std.foldl(
      std.max,
      [
alertForSeconds(a) for a in alerts
      ],
      0,
    ) + c.chaos_fire_margin_seconds,

  local etcdPods = {
    namespaces: [c.chaos_namespace],
    labelSelectors: c.chaos_etcd_pod_labels,
  },

  // name -> the fault (kind, action, spec) and the alerts it must trigger.
  chaosDrills+:: {
    'io-latency': {
      kind: 'IOChaos',
      description: 'Adds %s to every fsync on the data volume of one etcd member.' % c.chaos_io_delay,
      alerts: ['etcdHighFsyncDurations', 'etcdHighCommitDurations'],
      spec: {
        action: 'latency',
        mode: 'one',
        selector: etcdPods,
        containerNames: [c.chaos_etcd_container],
        volumePath: c.chaos_data_volume_path,
        methods: ['fsync'],
        delay: c.chaos_io_delay,
        percent: 100,
      },
    },
    'network-partition': {
      kind: 'NetworkChaos',
      description: 'Cuts one etcd member off from its peers (both directions); it loses its leader.',
      alerts: ['etcdNoLeader'],
      spec: {
        action: 'partition',
        mode: 'one',
        selector: etcdPods,
        direction: 'both',
        target: { mode: 'all', selector: etcdPods },
      },
    },
    'network-delay': {
      kind: 'NetworkChaos',
      description: 'Delays one etcd member\'s traffic to its peers by %s (jitter %s).' % [c.chaos_network_delay, c.chaos_network_jitter],
      alerts: ['etcdMemberCommunicationSlow'],
      spec: {
        action: 'delay',
        mode: 'one',
        selector: etcdPods,
        direction: 'to',
        target: { mode: 'all', selector: etcdPods },
        delay: { latency: c.chaos_network_delay, jitter: c.chaos_network_jitter, correlation: '0' },
      },
    },
    // pod-kill alone is healed by the kubelet within seconds, shorter than any `for:`;
    // pod-failure kills the member and keeps it down for the experiment's duration.
    'pod-failure': {
      kind: 'PodChaos',
      description: 'Kills one etcd member\'s pod and keeps it down.',
      alerts: ['EtcdInspectorMemberUnreachable', 'etcdMembersDown'],
      spec: {
        action: 'pod-failure',
        mode: 'one',
        selector: etcdPods,
      },
    },
    'cpu-stress': {
      kind: 'StressChaos',
      description: 'Runs %d CPU stress workers at %d%% in one etcd member\'s container; needs write load on the cluster to show.' % [c.chaos_cpu_workers, c.chaos_cpu_load],
      alerts: ['etcdHighNumberOfSlowApplies'],
      spec: {
        mode: 'one',
        selector: etcdPods,
        containerNames: [c.chaos_etcd_container],
        stressors: { cpu: { workers: c.chaos_cpu_workers, load: c.chaos_cpu_load } },
      },
    },
  },

  manifests+:: {
    // chaos/etcd-<drill>.yaml -> one Chaos Mesh experiment.
    chaosExperiments: {
      ['chaos/etcd-%s.yaml' % name]: {
        local drill = $.chaosDrills[name],
        apiVersion: 'chaos-mesh.org/v1alpha1',
        kind: drill.kind,
        metadata: {
          name: 'etcd-inspector-drill-%s' % name,
          namespace: c.chaos_namespace,
          labels: {
            'app.kubernetes.io/part-of': 'etcd-inspector',
            'etcd-inspector.io/drill': name,
          },
          annotations: {
            'etcd-inspector.io/description': drill.description,
            // Comma-separated alert names; `etcd-inspector drill --experiment` reads them.
            'etcd-inspector.io/expected-alerts': std.join(',', drill.alerts),
          },
        },
        spec: drill.spec { duration: goDuration(faultSeconds(drill.alerts)) },
      }
      for name in std.objectFields($.chaosDrills)
    },
    comments+:: {
      ['chaos/etcd-%s.yaml' % name]: |||
        Chaos Mesh drill "%(name)s" for a staging cluster: %(description)s
        It must trigger: %(alerts)s (within %(duration)s, the fault's duration).
        Apply it and watch the alerts beside it:
          kubectl apply -f etcd-%(name)s.yaml
          etcd-inspector drill --experiment etcd-%(name)s.yaml --prometheus.url=http://prometheus:9090
      ||| % {
        name: name,
        description: $.chaosDrills[name].description,
        alerts: std.join(', ', $.chaosDrills[name].alerts),
        duration: goDuration(faultSeconds($.chaosDrills[name].alerts)),
      }
      for name in std.objectFields($.chaosDrills)
    },
  },
}
