{{/* Chart name, truncated to a DNS label. */}}
{{- define "etcd-inspector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name unless the release already has it. */}}
{{- define "etcd-inspector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "etcd-inspector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "etcd-inspector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "etcd-inspector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "etcd-inspector.labels" -}}
helm.sh/chart: {{ include "etcd-inspector.chart" . }}
{{ include "etcd-inspector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: etcd-inspector
{{- end }}

{{- define "etcd-inspector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "etcd-inspector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "etcd-inspector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "etcd-inspector.tlsMount" -}}/etc/etcd-inspector/tls{{- end }}
{{- define "etcd-inspector.passwordMount" -}}/etc/etcd-inspector/auth{{- end }}
{{- define "etcd-inspector.webConfigMount" -}}/etc/etcd-inspector/web{{- end }}
{{- define "etcd-inspector.configMount" -}}/etc/etcd-inspector/config{{- end }}

{{/* The endpoints: the chart's mode decides, deployment mode requires them. */}}
{{- define "etcd-inspector.endpoints" -}}
{{- if eq .Values.mode "daemonset" }}
{{- .Values.daemonset.clientUrl }}
{{- else }}
{{- required "etcd.endpoints: list the members' client URLs (https://HOST:2379)" (.Values.etcd.endpoints | default list | join ",") }}
{{- end }}
{{- end }}

{{/* The etcd connection flags that `run` and `snapshot` share. */}}
{{- define "etcd-inspector.etcdArgs" -}}
- --etcd.endpoints={{ include "etcd-inspector.endpoints" . }}
- --etcd.cluster-name={{ .Values.etcd.clusterName }}
{{- if eq .Values.mode "daemonset" }}
{{- $d := .Values.daemonset }}
- --etcd.ca-file={{ $d.pkiDir }}/{{ $d.caFile }}
- --etcd.cert-file={{ $d.pkiDir }}/{{ $d.certFile }}
- --etcd.key-file={{ $d.pkiDir }}/{{ $d.keyFile }}
{{- else if .Values.etcd.tls.secretName }}
- --etcd.tls-dir={{ include "etcd-inspector.tlsMount" . }}
{{- end }}
{{- with .Values.etcd.serverName }}
- --etcd.server-name={{ . }}
{{- end }}
{{- with .Values.etcd.auth.username }}
- --etcd.username={{ . }}
{{- end }}
{{- if .Values.etcd.auth.passwordSecret.name }}
- --etcd.password-file={{ include "etcd-inspector.passwordMount" . }}/{{ .Values.etcd.auth.passwordSecret.key }}
{{- end }}
{{- end }}

{{/* Volumes for the etcd credentials (deployment mode) or kubeadm's PKI (daemonset mode). */}}
{{- define "etcd-inspector.etcdVolumes" -}}
{{- if eq .Values.mode "daemonset" }}
- name: etcd-certs
  hostPath:
    path: {{ .Values.daemonset.pkiDir }}
    type: Directory
{{- else if .Values.etcd.tls.secretName }}
- name: etcd-tls
  secret:
    secretName: {{ .Values.etcd.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- if .Values.etcd.auth.passwordSecret.name }}
- name: etcd-password
  secret:
    secretName: {{ .Values.etcd.auth.passwordSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ .Values.etcd.auth.passwordSecret.key }}
        path: {{ .Values.etcd.auth.passwordSecret.key }}
{{- end }}
{{- end }}

{{- define "etcd-inspector.etcdVolumeMounts" -}}
{{- if eq .Values.mode "daemonset" }}
- name: etcd-certs
  mountPath: {{ .Values.daemonset.pkiDir }}
  readOnly: true
{{- else if .Values.etcd.tls.secretName }}
- name: etcd-tls
  mountPath: {{ include "etcd-inspector.tlsMount" . }}
  readOnly: true
{{- end }}
{{- if .Values.etcd.auth.passwordSecret.name }}
- name: etcd-password
  mountPath: {{ include "etcd-inspector.passwordMount" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* The container's securityContext: the values, as root in daemonset mode (kubeadm's keys). */}}
{{- define "etcd-inspector.securityContext" -}}
{{- $sc := deepCopy .Values.securityContext }}
{{- if and (eq .Values.mode "daemonset") .Values.daemonset.runAsRoot }}
{{- $_ := set $sc "runAsUser" 0 }}
{{- $_ := set $sc "runAsGroup" 0 }}
{{- $_ := set $sc "runAsNonRoot" false }}
{{- end }}
{{- toYaml $sc }}
{{- end }}

{{- define "etcd-inspector.podSecurityContext" -}}
{{- $sc := deepCopy .Values.podSecurityContext }}
{{- if and (eq .Values.mode "daemonset") .Values.daemonset.runAsRoot }}
{{- $_ := set $sc "runAsUser" 0 }}
{{- $_ := set $sc "runAsGroup" 0 }}
{{- $_ := set $sc "runAsNonRoot" false }}
{{- $_ := unset $sc "fsGroup" }}
{{- end }}
{{- toYaml $sc }}
{{- end }}

{{- define "etcd-inspector.scheme" -}}
{{- if .Values.webConfig.enabled }}{{ if .Values.webConfig.tls }}HTTPS{{ else }}HTTP{{ end }}{{ else }}HTTP{{ end }}
{{- end }}

{{/* The exporter's own volumes: its web config and the user's extras. */}}
{{- define "etcd-inspector.webVolumes" -}}
{{- if .Values.webConfig.enabled }}
- name: web-config
  secret:
    secretName: {{ required "webConfig.secretName: the Secret holding the web config file" .Values.webConfig.secretName }}
    defaultMode: 0440
{{- end }}
{{- if .Values.config }}
- name: config
  configMap:
    name: {{ include "etcd-inspector.fullname" . }}-config
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "etcd-inspector.webVolumeMounts" -}}
{{- if .Values.webConfig.enabled }}
- name: web-config
  mountPath: {{ include "etcd-inspector.webConfigMount" . }}
  readOnly: true
{{- end }}
{{- if .Values.config }}
- name: config
  mountPath: {{ include "etcd-inspector.configMount" . }}
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}
