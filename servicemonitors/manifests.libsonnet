// Prometheus-Operator and Prometheus manifests under the hidden field `manifests`: a
// ServiceMonitor for the exporter run as a Deployment, a PodMonitor for the sidecar in an etcd
// StatefulSet, a PodMonitor for the kubeadm static pod, a PrometheusRule with every alert and
// recording rule, and a Prometheus configuration for VMs (static targets). The workloads
// themselves are in kubernetes.libsonnet.
{
  local c = $._config,
  local interval = '%ds' % c.scrape_interval_seconds,
  // The exporter bounds its work by Prometheus' scrape timeout header; leave it most of the
  // interval because it fetches every member's /metrics within one scrape.
  local timeout = '%ds' % std.max(c.scrape_interval_seconds - 5, 5),
  local labels = { 'app.kubernetes.io/name': 'etcd-inspector', 'app.kubernetes.io/part-of': 'etcd-inspector' } + c.prometheus_operator_labels,
  local endpoint = {
    path: c.exporter_metrics_path,
    interval: interval,
    scrapeTimeout: timeout,
    // The exporter's `cluster` and `member` labels must win over target labels of the same
    // name, or they would be renamed exported_cluster / exported_member.
    honorLabels: true,
    // One job name whatever the Service or pod is called; etcd_selector and
    // exporter_selector match it.
    relabelings: [{ action: 'replace', targetLabel: 'job', replacement: c.exporter_job }],
  },

  manifests+:: {
    serviceMonitor: {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: { name: 'etcd-inspector', namespace: c.namespace, labels: labels },
      spec: {
        selector: { matchLabels: c.exporter_service_labels },
        // Also the Deployment's namespace, so its Service is found whatever monitored_namespaces says.
        namespaceSelector: { matchNames: std.uniq(std.sort(c.monitored_namespaces + [c.exporter_namespace])) },
        endpoints: [endpoint { port: 'metrics' }],
      },
    },

    podMonitor: {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PodMonitor',
      metadata: { name: 'etcd-inspector-sidecar', namespace: c.namespace, labels: labels },
      spec: {
        selector: { matchLabels: c.sidecar_pod_labels },
        namespaceSelector: { matchNames: c.monitored_namespaces },
        podMetricsEndpoints: [endpoint { port: 'inspector' }],
      },
    },

    // kubeadm's static pods live in kube-system; mirror pods carry the manifest's labels.
    kubeadmPodMonitor: {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PodMonitor',
      metadata: { name: 'etcd-inspector-kubeadm', namespace: c.namespace, labels: labels },
      spec: {
        selector: { matchLabels: c.kubeadm_pod_labels },
        namespaceSelector: { matchNames: ['kube-system'] },
        podMetricsEndpoints: [endpoint { port: 'inspector' }],
      },
    },

    prometheusRule: {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name: 'etcd-inspector', namespace: c.namespace, labels: labels },
      spec: { groups: $.prometheusAlerts.groups + $.prometheusRules.groups },
    },

    // A complete prometheus.yml for the exporter on a VM; rule_files is the plain rule file
    // `etcd-inspector generate` writes beside it.
    scrapeConfig: {
      global: { scrape_interval: interval, evaluation_interval: interval },
      rule_files: ['prometheus-rules.yaml'],
      scrape_configs: [{
        job_name: c.exporter_job,
        honor_labels: true,
        metrics_path: c.exporter_metrics_path,
        scrape_interval: interval,
        scrape_timeout: timeout,
        static_configs: [{ targets: c.static_exporter_targets }],
      }],
    },

    // Comment lines written at the top of each generated file.
    comments:: {
      'backup-cronjob.yaml': (if c.backup_bucket == '' then |||
        Scheduled etcd snapshots: a CronJob (%(backup_schedule)s) runs `etcd-inspector snapshot`
        into the PersistentVolumeClaim %(backup_pvc)s in namespace %(exporter_namespace)s, with
        the client certificate of the Secret %(exporter_tls_secret)s, keeping the newest
        %(backup_keep)d snapshots. With etcd auth on, Maintenance.Snapshot needs the root role.
      ||| else |||
        Scheduled etcd snapshots: a CronJob (%(backup_schedule)s) runs `etcd-inspector snapshot`
        into %(backup_bucket)s from namespace %(exporter_namespace)s, with the client certificate
        of the Secret %(exporter_tls_secret)s, keeping the newest %(backup_keep)d snapshots.
        S3 credentials: the Secret backup_s3_credentials_secret, or the identity of the
        ServiceAccount etcd-inspector-snapshot (IRSA, EKS Pod Identity). With etcd auth on,
        Maintenance.Snapshot needs the root role.
      |||) % c,
      'scrape-config.yaml': |||
        Prometheus configuration for etcd-inspector on VMs (static targets). Start the exporter
        next to etcd with the members' client endpoints and etcd's client certificates:
          etcd-inspector run --etcd.endpoints=https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379 \
            --etcd.ca-file=/etc/etcd/pki/ca.crt --etcd.cert-file=/etc/etcd/pki/client.crt \
            --etcd.key-file=/etc/etcd/pki/client.key --etcd.cluster-name=%(etcd_cluster_name)s \
            --web.listen-address=:%(exporter_port)d
        Check it with: promtool check config scrape-config.yaml
      ||| % c,
      'servicemonitor.yaml': |||
        ServiceMonitor for etcd-inspector run as a Deployment (deployment.yaml): selects its
        Service by the labels %(exporter_service_labels)s,
        port "metrics" (%(exporter_port)d).
      ||| % { exporter_service_labels: std.manifestJsonMinified(c.exporter_service_labels), exporter_port: c.exporter_port },
      'podmonitor.yaml': |||
        PodMonitor for etcd-inspector as a sidecar in an etcd StatefulSet
        (statefulset-sidecar-patch.yaml): selects the etcd pods by the labels
        %(labels)s, port "inspector" (%(exporter_port)d).
      ||| % { labels: std.manifestJsonMinified(c.sidecar_pod_labels), exporter_port: c.exporter_port },
      'kubeadm-podmonitor.yaml': |||
        PodMonitor for etcd-inspector as a kubeadm static pod (kubeadm-static-pod.yaml): selects
        its pods in kube-system by the labels %(labels)s,
        port "inspector" (%(exporter_port)d).
      ||| % { labels: std.manifestJsonMinified(c.kubeadm_pod_labels), exporter_port: c.exporter_port },
      'prometheusrule.yaml': 'Every etcd-inspector alert and recording rule, for Prometheus-Operator.\n',
      'prometheus-rules.yaml': 'Every etcd-inspector alert and recording rule, as a plain Prometheus rule file.\n',
      'deployment.yaml': |||
        etcd-inspector as one Deployment per etcd cluster, and the Service that
        servicemonitor.yaml scrapes. It inspects the members in --etcd.endpoints with the client
        certificate from the Secret %(exporter_tls_secret)s in namespace %(exporter_namespace)s
        (files ca.crt, tls.crt, tls.key, mounted read-only). Create the Secret first, e.g.:
          kubectl -n %(exporter_namespace)s create secret generic %(exporter_tls_secret)s \
            --from-file=ca.crt=ca.crt --from-file=tls.crt=client.crt --from-file=tls.key=client.key
          kubectl apply -f deployment.yaml -f servicemonitor.yaml
        Set exporter_etcd_endpoints, exporter_namespace and exporter_tls_secret with
        `etcd-inspector generate --values`.
      ||| % c,
      'statefulset-sidecar-patch.yaml': |||
        etcd-inspector as a sidecar in each pod of the etcd StatefulSet "%(etcd_statefulset_name)s" (e.g. bitnami's
        etcd chart), %(etcd_statefulset_replicas)d replicas, headless Service "%(etcd_statefulset_service)s", client port %(etcd_client_port)d.
        A strategic-merge patch: the container and the volume are added by name.
          kubectl -n etcd patch statefulset %(etcd_statefulset_name)s --patch-file statefulset-sidecar-patch.yaml
        Each sidecar lists every member by its pod DNS name and names its own with
        --etcd.local-member (from its pod name), so only the one beside the leader runs the
        cluster-wide probes. The client certificate comes from the Secret %(sidecar_tls_secret)s
        (ca.crt, tls.crt, tls.key) in the StatefulSet's namespace; its names must be in the
        members' server certificates (bitnami's: *.%(etcd_statefulset_service)s.<namespace>.svc.%(cluster_domain)s).
        Scale the StatefulSet and etcd_statefulset_replicas together. Scrape with podmonitor.yaml.
      ||| % c,
      'kubeadm-static-pod.yaml': |||
        etcd-inspector as a static pod beside kubeadm's etcd: copy it to
        /etc/kubernetes/manifests/etcd-inspector.yaml on every control-plane node; the kubelet
        starts it. It talks to its own member on 127.0.0.1 (client port and kubeadm's metrics
        listener) with kubeadm's healthcheck client certificate from %(kubeadm_etcd_pki_dir)s.
        It runs as root because kubeadm keeps those keys root-only (0600); root reads them as
        their owner, so every capability is dropped, privilege escalation is off and the root
        filesystem is read-only. Scrape with kubeadm-podmonitor.yaml.
      ||| % c,
    },
  },
}
+ (import 'kubernetes.libsonnet')
