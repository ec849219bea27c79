// etcd-inspector as a sidecar container of an etcd member: an etcd StatefulSet patch and a
// kubeadm static-pod fragment. Both reach their own member on 127.0.0.1 over TLS with etcd's
// client certificates and listen on exporter_port.
{
  local c = $._config,

  local container(tlsDir, certFile, keyFile, securityContext) = {
    name: 'etcd-inspector',
    image: c.exporter_image,
    args: [
      'run',
      '--etcd.endpoints=https://127.0.0.1:2379',
      '--etcd.ca-file=%s/ca.crt' % tlsDir,
      '--etcd.cert-file=%s/%s' % [tlsDir, certFile],
      '--etcd.key-file=%s/%s' % [tlsDir, keyFile],
      '--etcd.cluster-name=%s' % c.etcd_cluster_name,
      '--web.listen-address=:%d' % c.exporter_port,
    ],
    ports: [{ name: 'inspector', containerPort: c.exporter_port, protocol: 'TCP' }],
    resources: {
      requests: { cpu: '50m', memory: '64Mi' },
      limits: { memory: '256Mi' },
    },
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    } + securityContext,
  },

  manifests+:: {
    sidecar: [
      {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata: { name: 'etcd' },
        spec: {
          template: {
            spec: {
              containers: [
                container('/etc/etcd-inspector/tls', 'tls.crt', 'tls.key', { runAsNonRoot: true, runAsUser: 65534 }) {
                  volumeMounts: [{ name: 'etcd-inspector-tls', mountPath: '/etc/etcd-inspector/tls', readOnly: true }],
                },
              ],
              volumes: [{ name: 'etcd-inspector-tls', secret: { secretName: c.sidecar_tls_secret } }],
            },
          },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'etcd', namespace: 'kube-system' },
        spec: {
          // kubeadm's etcd pod runs on the host network and already mounts etcd-certs.
          // kubeadm's keys are readable by root only, hence no runAsNonRoot here.
          containers: [
            container(c.kubeadm_etcd_pki_dir, 'healthcheck-client.crt', 'healthcheck-client.key', {}) {
              volumeMounts: [{ name: 'etcd-certs', mountPath: c.kubeadm_etcd_pki_dir, readOnly: true }],
            },
          ],
          volumes: [{ name: 'etcd-certs', hostPath: { path: c.kubeadm_etcd_pki_dir, type: 'DirectoryOrCreate' } }],
        },
      },
    ],
  },
}
