// etcd-inspector on Kubernetes, three ways, under the hidden field `manifests`:
//   deployment               one exporter per etcd cluster: a Deployment and its Service
//                            (scraped through servicemonitor.yaml)
//   statefulsetSidecarPatch  a sidecar in each pod of an etcd StatefulSet, as a strategic-merge
//                            patch (scraped through podmonitor.yaml)
//   kubeadmStaticPod         a static pod beside kubeadm's etcd on each control-plane node
//                            (scraped through kubeadmPodMonitor)
//   backupCronJob            `etcd-inspector snapshot` on a schedule, into a PersistentVolumeClaim
//                            or, with backup_bucket set, into an S3 bucket
// The image's entrypoint is `etcd-inspector`, so every container's args start with `run`.
{
  local c = $._config,

  // Where a Secret with the etcd client certificate is mounted (Deployment and sidecar).
  local tlsDir = '/etc/etcd-inspector/tls',
  local tlsVolume = 'etcd-inspector-tls',

  // The snapshot CronJob's destination: a bucket (backup_bucket) or, by default, a claim.
  local bucket = c.backup_bucket != '',
  local s3Env = (
    if c.backup_s3_region != '' then [{ name: 'AWS_REGION', value: c.backup_s3_region }] else []
  ) + (
    if c.backup_s3_credentials_secret != '' then [
      {
        name: key,
        valueFrom: { secretKeyRef: { name: c.backup_s3_credentials_secret, key: key } + (
          if key == 'AWS_SESSION_TOKEN' then { optional: true } else {}
        ) },
      }
      for key in ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']
    ] else []
  ),

  local tlsArgs(dir, cert, key) = [
    '--etcd.ca-file=%s/ca.crt' % dir,
    '--etcd.cert-file=%s/%s' % [dir, cert],
    '--etcd.key-file=%s/%s' % [dir, key],
  ],

  local webArgs = [
    '--etcd.cluster-name=%s' % c.etcd_cluster_name,
    '--web.listen-address=:%d' % c.exporter_port,
    // The monitors scrape exporter_metrics_path; keep the exporter serving it there.
    '--web.telemetry-path=%s' % c.exporter_metrics_path,
  ],

  // /-/healthy answers as soon as the web server runs; /-/ready once the first status round
  // is done (a few seconds, also when a member does not answer), so the first scrape has
  // member names. `host` is only for the static pod, whose probes go to the node's loopback.
  local probe(path, port, host=null) = {
    httpGet: { path: path, port: port, scheme: 'HTTP' } + (if host != null then { host: host } else {}),
    periodSeconds: 10,
    timeoutSeconds: 5,
    failureThreshold: 3,
  },

  // Hardened whatever the user: no privilege escalation, no capabilities, nothing written to
  // the image, the runtime's default seccomp profile. `user` adds who it runs as.
  local securityContext(user) = {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  } + user,

  local nonRoot = { runAsNonRoot: true, runAsUser: c.exporter_uid, runAsGroup: c.exporter_uid },

  local container(args, portName, user, host=null) = {
    name: 'etcd-inspector',
    image: c.exporter_image,
    imagePullPolicy: 'IfNotPresent',
    args: ['run'] + args + webArgs,
    ports: [{ name: portName, containerPort: c.exporter_port, protocol: 'TCP' }],
    livenessProbe: probe('/-/healthy', portName, host) { initialDelaySeconds: 5 },
    readinessProbe: probe('/-/ready', portName, host),
    resources: c.exporter_resources,
    securityContext: securityContext(user),
  },

  local tlsMount = { name: tlsVolume, mountPath: tlsDir, readOnly: true },

  local deploymentLabels = c.exporter_service_labels { 'app.kubernetes.io/part-of': 'etcd-inspector' },

  // The client URL of one StatefulSet member, `pod` being its name (or $(POD_NAME)).
  local memberURL(pod) = 'https://%s.%s.$(POD_NAMESPACE).svc.%s:%d' % [
    pod, c.etcd_statefulset_service, c.cluster_domain, c.etcd_client_port,
  ],

  manifests+:: {
    // 1. One exporter per etcd cluster. It reaches every member over the network with a client
    // certificate from the Secret exporter_tls_secret.
    deployment: [
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'etcd-inspector', namespace: c.exporter_namespace, labels: deploymentLabels },
        spec: {
          // One replica: a second one would run every inspection against etcd twice.
          replicas: 1,
          selector: { matchLabels: c.exporter_service_labels },
          template: {
            metadata: { labels: deploymentLabels },
            spec: {
              // The exporter talks to etcd only, never to the Kubernetes API.
              automountServiceAccountToken: false,
              securityContext: nonRoot {
                // The Secret's files belong to this group (mode 0440): readable by the exporter only.
                fsGroup: c.exporter_uid,
                seccompProfile: { type: 'RuntimeDefault' },
              },
              containers: [
                container(
                  ['--etcd.endpoints=%s' % std.join(',', c.exporter_etcd_endpoints)]
                  + tlsArgs(tlsDir, 'tls.crt', 'tls.key'),
                  'metrics',
                  nonRoot,
                ) { volumeMounts: [tlsMount] },
              ],
              volumes: [{
                name: tlsVolume,
                secret: { secretName: c.exporter_tls_secret, defaultMode: std.parseOctal('0440') },
              }],
            },
          },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        // Labelled exporter_service_labels: servicemonitor.yaml selects it by them.
        metadata: { name: 'etcd-inspector', namespace: c.exporter_namespace, labels: deploymentLabels },
        spec: {
          type: 'ClusterIP',
          selector: c.exporter_service_labels,
          ports: [{ name: 'metrics', port: c.exporter_port, targetPort: 'metrics', protocol: 'TCP' }],
        },
      },
    ],

    // 2. A sidecar in every pod of an etcd StatefulSet (kubectl patch --patch-file, or a
    // kustomize patch). Each sidecar lists every member by its pod DNS name and names its own
    // with --etcd.local-member, built from its pod name ($(POD_NAME) is expanded by Kubernetes
    // from the env below), so only the sidecar beside the leader runs the cluster-wide probes.
    statefulsetSidecarPatch: {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: c.etcd_statefulset_name },
      spec: {
        template: {
          spec: {
            containers: [
              container(
                [
                  '--etcd.endpoints=%s' % std.join(',', [
                    memberURL('%s-%d' % [c.etcd_statefulset_name, i])
                    for i in std.range(0, c.etcd_statefulset_replicas - 1)
                  ]),
                  '--etcd.local-member=%s' % memberURL('$(POD_NAME)'),
                ] + tlsArgs(tlsDir, 'tls.crt', 'tls.key'),
                'inspector',
                nonRoot,
              ) {
                env: [
                  { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                  { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                ],
                volumeMounts: [tlsMount],
              },
            ],
            volumes: [{
              name: tlsVolume,
              // Mode 0444: the patch leaves the etcd pod's own securityContext (its fsGroup) alone,
              // so the files must be readable by the sidecar's UID without it.
              secret: { secretName: c.sidecar_tls_secret, defaultMode: std.parseOctal('0444') },
            }],
          },
        },
      },
    },

    // 4. Scheduled snapshots (backup-cronjob.yaml): a CronJob runs `etcd-inspector snapshot`
    // with the Deployment's endpoints and client certificate, into a PersistentVolumeClaim,
    // and prunes old snapshots. With etcd auth on, the certificate's user needs the root role
    // (Maintenance.Snapshot). For the backup probe, mount the claim into the exporter too and
    // add --backup.location (a claim on two nodes needs ReadWriteMany).
    // With backup_bucket set, no claim: the snapshot is uploaded to the bucket (as the chart's
    // snapshot.bucket), with the keys of a Secret as AWS_* variables or the identity of the
    // ServiceAccount etcd-inspector-snapshot (IRSA annotation, EKS Pod Identity association);
    // the backup probe then takes --backup.location=s3://... with the same credentials.
    backupCronJob: (
      if bucket then [{
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: {
          name: 'etcd-inspector-snapshot',
          namespace: c.exporter_namespace,
          labels: deploymentLabels,
        } + (if c.backup_service_account_annotations != {} then { annotations: c.backup_service_account_annotations } else {}),
        // The snapshot never talks to the Kubernetes API; IRSA's webhook projects its own token.
        automountServiceAccountToken: false,
      }] else [{
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: c.backup_pvc, namespace: c.exporter_namespace, labels: deploymentLabels },
        spec: {
          accessModes: ['ReadWriteOnce'],
          resources: { requests: { storage: c.backup_pvc_size } },
        },
      }]
    ) + [
      {
        apiVersion: 'batch/v1',
        kind: 'CronJob',
        metadata: { name: 'etcd-inspector-snapshot', namespace: c.exporter_namespace, labels: deploymentLabels },
        spec: {
          schedule: c.backup_schedule,
          // Two snapshots at once would only slow each other down.
          concurrencyPolicy: 'Forbid',
          successfulJobsHistoryLimit: 3,
          failedJobsHistoryLimit: 3,
          jobTemplate: {
            spec: {
              backoffLimit: 2,
              template: {
                metadata: { labels: deploymentLabels },
                spec: (if bucket then { serviceAccountName: 'etcd-inspector-snapshot' } else {}) + {
                  restartPolicy: 'OnFailure',
                  automountServiceAccountToken: false,
                  securityContext: nonRoot {
                    // The claim's files and the Secret's belong to this group.
                    fsGroup: c.exporter_uid,
                    seccompProfile: { type: 'RuntimeDefault' },
                  },
                  containers: [{
                    name: 'snapshot',
                    image: c.exporter_image,
                    imagePullPolicy: 'IfNotPresent',
                    args: [
                      'snapshot',
                      '--etcd.endpoints=%s' % std.join(',', c.exporter_etcd_endpoints),
                      '--etcd.cluster-name=%s' % c.etcd_cluster_name,
                    ] + tlsArgs(tlsDir, 'tls.crt', 'tls.key') + (
                      if bucket then ['--out=%s' % c.backup_bucket] + (
                        if c.backup_s3_endpoint_url != '' then ['--s3.endpoint-url=%s' % c.backup_s3_endpoint_url] else []
                      ) else ['--out=/backups']
                    ) + [
                      '--keep=%d' % c.backup_keep,
                      '--max-age=%s' % c.backup_keep_max_age,
                    ],
                    resources: c.exporter_resources,
                    securityContext: securityContext(nonRoot),
                    volumeMounts: [tlsMount] + (if bucket then [] else [{ name: 'backups', mountPath: '/backups' }]),
                  } + (if s3Env != [] then { env: s3Env } else {})],
                  volumes: [
                    {
                      name: tlsVolume,
                      secret: { secretName: c.exporter_tls_secret, defaultMode: std.parseOctal('0440') },
                    },
                  ] + (if bucket then [] else [{ name: 'backups', persistentVolumeClaim: { claimName: c.backup_pvc } }]),
                },
              },
            },
          },
        },
      },
    ],

    // 3. A static pod beside kubeadm's etcd on each control-plane node, on the host network,
    // talking to its own member on 127.0.0.1 with kubeadm's healthcheck client certificate.
    kubeadmStaticPod: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'etcd-inspector', namespace: 'kube-system', labels: c.kubeadm_pod_labels },
      spec: {
        hostNetwork: true,
        priorityClassName: 'system-node-critical',
        securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
        containers: [
          container(
            [
              '--etcd.endpoints=https://127.0.0.1:%d' % c.etcd_client_port,
              '--etcd.metrics-urls=%s' % c.kubeadm_metrics_url,
              '--etcd.local-member=https://127.0.0.1:%d' % c.etcd_client_port,
            ] + tlsArgs(c.kubeadm_etcd_pki_dir, 'healthcheck-client.crt', 'healthcheck-client.key'),
            'inspector',
            // Root, on purpose: kubeadm writes the keys in kubeadm_etcd_pki_dir owned by root
            // with mode 0600, so only UID 0 can open them (UID 65532 gets Permission denied).
            // Root opens them as their owner, which takes no capability, so every capability
            // is dropped (what makes root more than a file owner: CAP_DAC_OVERRIDE,
            // CAP_CHOWN, ...), privilege escalation is off, the root filesystem and the
            // certificate directory are read-only, and seccomp filters its system calls.
            { runAsNonRoot: false, runAsUser: 0, runAsGroup: 0 },
            host='127.0.0.1',
          ) {
            volumeMounts: [{ name: 'etcd-certs', mountPath: c.kubeadm_etcd_pki_dir, readOnly: true }],
          },
        ],
        // type Directory: the pod fails to start on a node without kubeadm's etcd certificates
        // instead of creating an empty directory.
        volumes: [{ name: 'etcd-certs', hostPath: { path: c.kubeadm_etcd_pki_dir, type: 'Directory' } }],
      },
    },
  },
}
