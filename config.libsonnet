// Configuration of the etcd-inspector monitoring mixin: every selector, label name, threshold
// and deployment setting used by rules/, dashboards/ and servicemonitors/ lives here, each with
// its meaning. `etcd-inspector generate --values FILE` overrides these names (an override of a
// map replaces the whole map); from jsonnet, override them with `mixin + { _config+:: {...} }`.
//
// Two setups are supported:
//   through the exporter (default)  Prometheus scrapes etcd-inspector, which re-exposes every
//                                    member's metrics with `cluster` and `member` labels.
//   members scraped directly        e.g. etcd_selector: 'job="etcd"', etcd_instance_labels:
//                                    'instance' (add 'pod' on Kubernetes); the inspection alerts
//                                    still read the exporter's own series via exporter_selector.
{
  _config+:: {
    // ---- Names and meanings kept from the etcd mixin (etcd-io/etcd contrib/mixin) ----------

    // Selects the etcd members' own series (etcd_*, grpc_*, process_*). Through the exporter
    // that is the exporter's job; scraping members directly it is the etcd job.
    etcd_selector: 'job="etcd-inspector"',

    // Label names that tell one member from another and are aggregated away by alerts about a
    // cluster as a whole. The default covers members scraped directly (instance), on
    // Kubernetes (pod) and through the exporter (member). Naming a label that a series does
    // not carry is harmless; leaving out a label that differs per member splits every cluster
    // into one group per member (upstream's "insufficient members (0)" false alarm).
    etcd_instance_labels: 'instance, pod, member',

    // Global scrape interval; windows that must span a few scrapes are derived from it.
    scrape_interval_seconds: 30,

    // Label that names an etcd cluster on the etcd series. Descriptions fall back to `job`
    // when a series does not carry it (members scraped directly without a cluster label).
    clusterLabel: 'cluster',

    // Grafana variable refresh: 0 never, 1 on dashboard load, 2 on time range change.
    dashboard_var_refresh: 2,

    // ---- The exporter -----------------------------------------------------------------------

    // Selects the series the exporter computes itself (etcd_inspector_*) and its own `up`.
    exporter_selector: 'job="etcd-inspector"',

    // Label names that tell exporter replicas apart (two replicas, or one sidecar per member,
    // inspect the same cluster); cluster-wide inspection alerts aggregate them away so one
    // problem raises one alert.
    exporter_instance_labels: 'instance, pod',

    // Label that names a member on the etcd series: `member` through the exporter, `instance`
    // when members are scraped directly. Derived from etcd_instance_labels unless set.
    etcd_member_label:
      if std.member([std.stripChars(l, ' ') for l in std.split(self.etcd_instance_labels, ',')], 'member')
      then 'member' else 'instance',

    // One series per member, 1 while it answers and 0 while it does not: Prometheus' `up` for
    // members scraped directly, the exporter's etcd_inspector_member_up through the exporter
    // (there `up` is the exporter's, so targets matched by exporter_selector are left out).
    etcd_member_up_series:
      if self.etcd_selector == self.exporter_selector
      then 'etcd_inspector_member_up{%(etcd_selector)s}' % self
      else '(up{%(etcd_selector)s} unless on (job, instance) up{%(exporter_selector)s}) or etcd_inspector_member_up{%(etcd_selector)s}' % self,

    // Base of every alert's runbook_url; the lower-cased alert name is appended (one place).
    runbook_url_base: 'https://github.com/etcd-inspector/etcd-inspector/blob/main/docs/mixin.md#',

    // ---- Thresholds of the etcd mixin's alerts (upstream values) -----------------------------

    // etcdMembersDown: peer send failures per second that count a peer as down.
    members_down_peer_failures_per_second: 0.01,
    // etcdHighNumberOfLeaderChanges: leader changes within leader_changes_window.
    leader_changes_max: 4,
    leader_changes_window: '15m',
    // etcdHighNumberOfFailedGRPCRequests: gRPC codes that count as failures ...
    grpc_failure_codes: 'Unknown|FailedPrecondition|ResourceExhausted|Internal|Unavailable|DataLoss|DeadlineExceeded',
    // ... among the requests this selector keeps. Streams (Watch, LeaseKeepAlive) end with
    // Unavailable or Canceled whenever a client goes away, so only unary calls are counted.
    grpc_failure_scope_selector: 'grpc_type="unary"',
    // ... and the failed share, in percent, for the warning and the critical alert.
    grpc_failed_percent_warning: 1,
    grpc_failed_percent_critical: 5,
    // etcdGRPCRequestsSlow: p99 of unary gRPC handling time (needs etcd --metrics=extensive).
    grpc_slow_p99_seconds: 0.15,
    // etcdHighNumberOfSlowApplies (works without extensive metrics): applies per second that
    // took longer than etcd's expected duration (100ms).
    slow_applies_per_second: 0.1,
    // etcdMemberCommunicationSlow: p99 peer round-trip time.
    peer_rtt_p99_seconds: 0.15,
    // etcdHighNumberOfFailedProposals: failed proposals per second over the window.
    failed_proposals_per_second: 5,
    failed_proposals_window: '15m',
    // etcdHighFsyncDurations: p99 WAL fsync time.
    fsync_p99_seconds_warning: 0.5,
    fsync_p99_seconds_critical: 1,
    // etcdHighCommitDurations: p99 backend commit time.
    commit_p99_seconds_warning: 0.25,
    // etcdDatabaseQuotaLowSpace: database size in percent of the backend quota.
    quota_low_space_percent: 95,
    // etcdExcessiveDatabaseGrowth: window of the linear prediction and how far ahead it looks.
    db_growth_window: '4h',
    db_growth_horizon_seconds: 4 * 60 * 60,
    // etcdDatabaseHighFragmentationRatio: in-use / allocated below this ratio ...
    fragmentation_in_use_ratio: 0.5,
    // ... while more than this many bytes are in use (small databases are not worth a defrag).
    fragmentation_min_in_use_bytes: 104857600,

    // ---- Thresholds of the inspection alerts ------------------------------------------------

    // EtcdInspectorMemberRevisionLag: revisions a member may trail the most advanced one.
    revision_lag_max: 1000,
    // EtcdInspectorMemberAppliedIndexLag: raft entries a member's applied index may trail.
    applied_index_lag_max: 1000,
    // EtcdInspectorLearnerBehind: raft entries a learner may trail the leader's index
    // (etcd_inspector_learner_lag_entries); etcd refuses to promote a learner until it is
    // within 90% of the leader's log, so one that stays behind cannot be promoted.
    learner_lag_entries_max: 10000,
    // EtcdInspectorLearnerDatabaseLarge: a learner's database over this many times the largest
    // voter's (a learner cannot be defragmented: etcd refuses Defragment on it).
    learner_db_size_ratio_max: 1.5,
    // EtcdInspectorAlarmActive: etcd alarms that page (etcd_inspector_member_alarm's alarm label).
    alarms_critical: 'NOSPACE|CORRUPT',
    // EtcdInspectorQuotaHeadroomLow: tiers of the share (0..1) of the backend quota in use, in
    // rising order, one alert each with its severity (info, warning, critical); `inspect` makes
    // the finding of the highest tier crossed. openshift's cluster-etcd-operator's 65/75/85%.
    quota_used_ratio_tiers: [
      { severity: 'info', ratio: 0.65 },
      { severity: 'warning', ratio: 0.75 },
      { severity: 'critical', ratio: 0.85 },
    ],
    // EtcdInspectorQuotaExhaustionProjected: projected seconds until the quota is reached.
    quota_exhaustion_horizon_seconds: 24 * 60 * 60,
    // EtcdInspectorBigValues: values over the exporter's big-value size tolerated ...
    big_values_max: 0,
    // ... where big means over this size: the exporter's default (the bigvalue probe's
    // threshold_bytes option; etcd_inspector_big_value_threshold_bytes says what it used).
    big_value_threshold_bytes: 102400,
    // EtcdInspectorHotKey: writes per second to a single key.
    hot_key_writes_per_second: 50,
    // EtcdInspectorWatchBehind: revisions the exporter's hot-key watch may trail the most
    // advanced member (etcd_inspector_watch_lag_revisions, whole-keyspace watch only), and for
    // how long. A watch that keeps up trails by well under a second of writes and reads 0 at
    // most scrapes (the lag is taken against a status round no newer than the watch's
    // snapshot); one that stays over this for watch_behind_for is stuck or cannot keep up.
    watch_lag_max: 1000,
    watch_behind_for: '5m',
    // EtcdInspectorPrefixKeyGrowth: keys a prefix may gain within prefix_key_growth_window.
    prefix_key_growth_max: 10000,
    prefix_key_growth_window: '1h',
    // EtcdInspectorCertificateExpiry: days before a certificate between the exporter and etcd
    // (a member's serving certificate, the exporter's client certificate) expires. Keep them
    // equal to the certs probe's warning_days / critical_days, which make the same findings.
    certificate_expiry_warning_days: 21,
    certificate_expiry_critical_days: 7,
    // EtcdInspectorCompactionStalled: revisions etcd keeps since its last compaction
    // (etcd_inspector_revisions_since_compaction, from the consistency probe's HashKV). With
    // no auto-compaction every write is kept until the quota fills; 1M revisions is days of
    // a busy Kubernetes cluster whose API server compacts every 5 minutes.
    revisions_since_compaction_max: 1000000,
    // EtcdInspectorLeasesHigh: active leases in a cluster (etcd_inspector_leases). Leaked
    // leases (a client granting one per write and never revoking it) fill the database.
    leases_max: 10000,
    // EtcdInspectorLeasesGrowing: the lease count growing without bound, long before it
    // reaches leases_max. Fires when the lowest count of the last leases_growth_span is more
    // than leases_growth_max above the highest count of the same span leases_growth_window
    // earlier, and that holds for leases_growth_for: a steady rise. A stable count never
    // fires, nor does a sawtooth of leases granted and expiring (its lows stay near the
    // earlier highs) whose period is shorter than the span.
    // Leases the count may gain within the window ...
    leases_growth_max: 1000,
    // ... the window (how far back the earlier span lies) ...
    leases_growth_window: '1h',
    // ... the span whose lowest (now) and highest (a window ago) counts are compared ...
    leases_growth_span: '10m',
    // ... and how long the rise must hold.
    leases_growth_for: '30m',
    // EtcdInspectorBackupTooOld: age of the newest snapshot in a backup location, in seconds.
    // Keep it equal to the exporter's clusters[].backup.max_age (--backup.max-age, default 1h)
    // so that `inspect` and the alert agree; it must exceed the snapshot schedule's period.
    backup_max_age_seconds: 3600,
    // EtcdInspectorBackupMissing, ...NotWhole, ...DataMismatch, ...RestoreFailed: how long
    // the condition must hold. A snapshot being written is not visible (temporary name), so
    // short is fine; the probe checks every 5 minutes.
    backup_alert_for: '15m',
    // EtcdInspectorProbeStale: seconds since a probe's last success, per probe; probes run at
    // different intervals (the value scan is the slowest). One entry per probe the exporter
    // ships, equal to its spec's stale_seconds (tests/test_thresholds.py checks both ways).
    probe_stale_seconds: {
      status: 600,
      performance: 600,
      consistency: 1800,
      quota: 1800,
      hotkeys: 1800,
      bigvalue: 6 * 3600,
      certs: 3600,
      backup: 3600,
      leases: 1800,
    },

    // ---- `inspect --baseline BEFORE.json` (render/baseline.py) ---------------------------
    // How much may change between the saved report and this run before the comparison names
    // it; growth beyond these makes `inspect --baseline` exit 1. No alert reads them: they are
    // here so that one values file (`--mixin.values`) sets every threshold.

    // Keys a prefix may gain or lose (the bigvalue probe's per-prefix counts).
    baseline_prefix_keys_delta: 1000,
    // Bytes a member's database file may grow or shrink: etcd grows the file in steps and a
    // busy cluster's file breathes with compaction.
    baseline_db_size_delta_bytes: 1048576,
    // Active leases the cluster may gain or lose (the leases probe's count): one run cannot
    // see a growth rate, so a leak shows as a count that grew from the saved report's.
    baseline_leases_delta: 1000,

    // ---- Deployment (servicemonitors/) ------------------------------------------------------

    // Namespace of the ServiceMonitor, PodMonitor and PrometheusRule.
    namespace: 'monitoring',
    // Extra labels on the ServiceMonitor/PodMonitor/PrometheusRule, e.g. the ones your
    // Prometheus' ruleSelector / serviceMonitorSelector match (kube-prometheus-stack: release).
    prometheus_operator_labels: {},
    // The exporter's container image (placeholder until the first release).
    exporter_image: 'ghcr.io/etcd-inspector/etcd-inspector:0.1.0',
    // The exporter's listen port and metrics path.
    exporter_port: 9979,
    exporter_metrics_path: '/metrics',
    // Job name Prometheus gives the exporter; etcd_selector and exporter_selector match it.
    exporter_job: 'etcd-inspector',
    // Labels of the exporter's Service (Deployment setup), selected by the ServiceMonitor.
    exporter_service_labels: { 'app.kubernetes.io/name': 'etcd-inspector' },
    // Labels of the etcd StatefulSet's pods that carry the sidecar, selected by the PodMonitor
    // podmonitor.yaml (bitnami's etcd chart: name etcd, instance = the Helm release).
    sidecar_pod_labels: { 'app.kubernetes.io/name': 'etcd', 'app.kubernetes.io/instance': 'etcd' },
    // Namespaces the ServiceMonitor and the StatefulSet's PodMonitor look in (the ServiceMonitor
    // also looks in exporter_namespace).
    monitored_namespaces: ['etcd', 'kube-system'],
    // Name the exporter gives the cluster (--etcd.cluster-name), the `cluster` label.
    etcd_cluster_name: 'etcd',
    // Secret holding the etcd client certificate of the StatefulSet sidecar (ca.crt, tls.crt,
    // tls.key), and the kubeadm directory holding the healthcheck client certificate.
    sidecar_tls_secret: 'etcd-inspector-etcd-client',
    kubeadm_etcd_pki_dir: '/etc/kubernetes/pki/etcd',

    // ---- Kubernetes workloads (servicemonitors/: deployment.yaml, -------------------------
    // ---- statefulset-sidecar-patch.yaml, kubeadm-static-pod.yaml) --------------------------

    // UID and GID the image runs as (the Dockerfile's USER); the Deployment and the StatefulSet
    // sidecar run as this user, non-root.
    exporter_uid: 65532,
    // Requests and limits of every etcd-inspector container. The value scan holds one page of
    // values at a time; a cluster with many large values may need more memory.
    exporter_resources: {
      requests: { cpu: '50m', memory: '64Mi' },
      limits: { cpu: '500m', memory: '256Mi' },
    },
    // One exporter per cluster (deployment.yaml): the namespace of its Deployment and Service ...
    exporter_namespace: 'etcd',
    // ... the Secret in that namespace with its etcd client certificate: ca.crt, tls.crt and
    // tls.key (a kubernetes.io/tls Secret with ca.crt added) ...
    exporter_tls_secret: 'etcd-inspector-etcd-client',
    // ... and the client URLs of the members it inspects (--etcd.endpoints). The default is the
    // etcd StatefulSet below, seen from exporter_namespace; for etcd outside Kubernetes list
    // its members, e.g. ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'].
    exporter_etcd_endpoints: [
      'https://%s-%d.%s.%s.svc.%s:%d' % [
        self.etcd_statefulset_name, i, self.etcd_statefulset_service, self.exporter_namespace,
        self.cluster_domain, self.etcd_client_port,
      ]
      for i in std.range(0, self.etcd_statefulset_replicas - 1)
    ],
    // The etcd StatefulSet the sidecar patch is for (bitnami's etcd chart, release "etcd").
    // Each sidecar lists every member by its pod DNS name,
    // https://<pod>.<service>.<namespace>.svc.<cluster_domain>:<client port>, and names its
    // own with --etcd.local-member. The StatefulSet's name: its pods are <name>-0, <name>-1, ...
    etcd_statefulset_name: 'etcd',
    // Its replica count (spec.replicas): scale the StatefulSet and this together.
    etcd_statefulset_replicas: 3,
    // Its headless Service (spec.serviceName), which gives each pod its DNS name.
    etcd_statefulset_service: 'etcd-headless',
    // etcd's client port (also of the Deployment's default endpoints and the kubeadm pod).
    etcd_client_port: 2379,
    // The cluster's DNS domain (kubelet --cluster-domain).
    cluster_domain: 'cluster.local',
    // kubeadm static pod (kubeadm-static-pod.yaml): etcd's metrics URL on the node (kubeadm
    // sets etcd --listen-metrics-urls=http://127.0.0.1:2381) ...
    kubeadm_metrics_url: 'http://127.0.0.1:2381/metrics',
    // ... and the static pod's labels, selected by kubeadm-podmonitor.yaml.
    kubeadm_pod_labels: { component: 'etcd-inspector', tier: 'control-plane' },
    // backup-cronjob.yaml: `etcd-inspector snapshot` as a CronJob writing to a PVC ...
    backup_schedule: '*/30 * * * *',
    // ... the PersistentVolumeClaim (in exporter_namespace) it writes to ...
    backup_pvc: 'etcd-backups',
    // ... and its retention: the newest backup_keep snapshots, none older than backup_keep_max_age.
    backup_keep: 48,
    backup_keep_max_age: '7d',
    // ... and the size the claim requests (a snapshot is about the size of etcd's database).
    backup_pvc_size: '10Gi',
    // ... or, instead of the claim (none is made), a bucket: s3://BUCKET/PREFIX ('' = the claim).
    backup_bucket: '',
    // An S3-compatible endpoint (MinIO, Ceph RGW, ...; --s3.endpoint-url); '' = AWS S3.
    backup_s3_endpoint_url: '',
    // AWS_REGION of the bucket; '' = the SDK's default (us-east-1 for a custom endpoint).
    backup_s3_region: '',
    // A Secret with the keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN
    // optional), given to the snapshot as those variables; '' = the pod's own identity (IRSA or
    // EKS Pod Identity through the ServiceAccount etcd-inspector-snapshot, made with a bucket).
    backup_s3_credentials_secret: '',
    // Annotations of that ServiceAccount, e.g. IRSA's
    // { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::111122223333:role/etcd-backups' }.
    backup_service_account_annotations: {},
    // Exporters Prometheus scrapes in the static (VM) scrape config.
    static_exporter_targets: ['etcd-inspector.example.internal:9979'],

    // ---- Chaos Mesh drills (servicemonitors/chaos.libsonnet -> chaos/*.yaml) ---------------
    // Experiments for a staging cluster, each annotated with the alerts it must trigger; run
    // one with `etcd-inspector drill --experiment FILE` beside it (README: Game day).
    // Namespace of the etcd pods: the experiments are created there and select pods in it
    // (kubeadm: kube-system).
    chaos_namespace: self.exporter_namespace,
    // Labels of the etcd pods the experiments pick one member from (kubeadm's static pods:
    // { component: 'etcd', tier: 'control-plane' }). Default: the StatefulSet's pods.
    chaos_etcd_pod_labels: self.sidecar_pod_labels,
    // The etcd container in those pods (IOChaos and StressChaos inject into it).
    chaos_etcd_container: 'etcd',
    // Mount path, in the etcd container, of the volume holding etcd's data directory
    // (bitnami's chart: /bitnami/etcd; kubeadm: /var/lib/etcd).
    chaos_data_volume_path: '/bitnami/etcd',
    // IOChaos: latency added to every fsync on that volume; above fsync_p99_seconds_critical
    // so that both etcdHighFsyncDurations alerts fire.
    chaos_io_delay: '1200ms',
    // NetworkChaos delay: latency and jitter added to one member's traffic to its peers; above
    // peer_rtt_p99_seconds.
    chaos_network_delay: '300ms',
    chaos_network_jitter: '50ms',
    // StressChaos: CPU stress workers in the etcd container and the load (percent) of each;
    // use at least twice the container's CPU limit (or the node's cores without a limit).
    chaos_cpu_workers: 4,
    chaos_cpu_load: 100,
    // How long an experiment keeps its fault on: the longest `for:` of the alerts it expects
    // plus this margin (the 5m rate windows fill, then a scrape and an evaluation).
    chaos_fire_margin_seconds: 600,
  },
}
