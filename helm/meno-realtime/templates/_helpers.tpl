{{/*
Names
*/}}
{{- define "meno.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name (seed 002's ServiceName). Kept to 50
characters so that "-bridge", "-migrate" and the like still fit in 63.
*/}}
{{- define "meno.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "meno.bridge.fullname" -}}
{{- printf "%s-bridge" (include "meno.fullname" .) }}
{{- end }}

{{- define "meno.core.fullname" -}}
{{- printf "%s-core" (include "meno.fullname" .) }}
{{- end }}

{{- define "meno.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels: common labels of every resource; selector labels take a component.
Usage: include "meno.labels" (dict "ctx" . "component" "bridge")
*/}}
{{- define "meno.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meno.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{- define "meno.labels" -}}
helm.sh/chart: {{ include "meno.chart" .ctx }}
{{ include "meno.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: {{ include "meno.fullname" .ctx }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "meno.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end }}

{{- define "meno.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "meno.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "meno.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Secret names: existingSecret, or "<fullname>-<suffix>" by convention.
*/}}
{{- define "meno.jwtSecretName" -}}
{{- default (printf "%s-jwt" (include "meno.fullname" .)) .Values.auth.jwt.existingSecret }}
{{- end }}

{{- define "meno.grpcTokenSecretName" -}}
{{- default (printf "%s-grpc-token" (include "meno.fullname" .)) .Values.grpcAuth.existingSecret }}
{{- end }}

{{/* True ("true") when the bridge mounts the JWT Secret. */}}
{{- define "meno.jwtUsesSecret" -}}
{{- if and (eq .Values.auth.mode "jwt") (has .Values.auth.jwt.keySource (list "hs256" "jwksFile")) }}true{{ end }}
{{- end }}

{{/* The core's gRPC URL as the bridges dial it. */}}
{{- define "meno.coreUrl" -}}
{{- printf "%s://%s.%s.svc:%d" (ternary "https" "http" .Values.core.tls.enabled) (include "meno.core.fullname" .) .Release.Namespace (int .Values.core.grpcPort) }}
{{- end }}

{{/*
Several core replicas ("true" or empty): core.replicas above 1, which the
checks below allow only with the ScyllaDB store. Everything that one replica
does not need (the headless Service, --peers-dns, RollingUpdate, spreading)
hangs on this, so a single core renders as it always did.
*/}}
{{- define "meno.core.scaleOut" -}}
{{- if gt (int .Values.core.replicas) 1 }}true{{ end }}
{{- end }}

{{/* The headless Service whose A records are the live (ready) core replicas. */}}
{{- define "meno.core.peersName" -}}
{{- printf "%s-core-peers" (include "meno.fullname" .) }}
{{- end }}

{{/* --peers-dns: the headless Service's fully qualified name and gRPC port. */}}
{{- define "meno.core.peersDns" -}}
{{- printf "%s.%s.svc.%s:%d" (include "meno.core.peersName" .) .Release.Namespace .Values.clusterDomain (int .Values.core.grpcPort) }}
{{- end }}

{{/*
Env entries of each core replica when there are several: its id (the pod
name, stable for the pod's life and unique among live pods) and the gRPC URL
bridges and the other replicas dial it at (its pod IP; IPv4). core.extraEnv
overrides either, as it overrides every other setting.
*/}}
{{- define "meno.core.replicaEnv" -}}
{{- $extra := .Values.core.extraEnv }}
{{- if not (hasKey $extra "MENO_REPLICA_ID") }}
- name: MENO_REPLICA_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
{{- if not (hasKey $extra "MENO_ADVERTISE_URL") }}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: MENO_ADVERTISE_URL
  value: {{ printf "http://$(POD_IP):%d" (int .Values.core.grpcPort) | quote }}
{{- end }}
{{- end }}

{{/* The path the Ingress routes to the bridges. */}}
{{- define "meno.ingressPath" -}}
{{- default .Values.bridge.wsPath .Values.ingress.path }}
{{- end }}

{{/* Termination grace periods: explicit, or derived from the drain timeouts. */}}
{{- define "meno.bridge.gracePeriod" -}}
{{- $min := add (int .Values.bridge.preStopSleepSeconds) (int .Values.bridge.drainTimeoutSeconds) }}
{{- if gt (int .Values.bridge.terminationGracePeriodSeconds) 0 }}
{{- .Values.bridge.terminationGracePeriodSeconds | int }}
{{- else }}
{{- add $min 10 }}
{{- end }}
{{- end }}

{{- define "meno.core.gracePeriod" -}}
{{- if gt (int .Values.core.terminationGracePeriodSeconds) 0 }}
{{- .Values.core.terminationGracePeriodSeconds | int }}
{{- else }}
{{- add (int .Values.core.drainTimeoutSeconds) 10 }}
{{- end }}
{{- end }}

{{/*
Settings of the ScyllaDB store as MENO_* variables (a YAML map), shared by the
core's ConfigMap and the migration Job (a pre-install hook runs before the
ConfigMap exists, so the Job carries them inline).
*/}}
{{- define "meno.scyllaEnv" -}}
{{- $s := .Values.store.scylla -}}
MENO_STORE: scylla
MENO_SCYLLA_NODES: {{ join "," $s.nodes | quote }}
MENO_SCYLLA_KEYSPACE: {{ $s.keyspace | quote }}
{{- if $s.localDatacenter }}
MENO_SCYLLA_LOCAL_DC: {{ $s.localDatacenter | quote }}
{{- end }}
MENO_SCYLLA_CONSISTENCY: {{ $s.consistency | quote }}
MENO_SCYLLA_SERIAL_CONSISTENCY: {{ $s.serialConsistency | quote }}
MENO_SCYLLA_REQUEST_TIMEOUT: {{ $s.requestTimeout | quote }}
MENO_SCYLLA_CONNECT_TIMEOUT: {{ $s.connectTimeout | quote }}
MENO_SCYLLA_TABLE_SESSIONS: {{ $s.tables.sessions | quote }}
MENO_SCYLLA_TABLE_LEASE: {{ $s.tables.lease | quote }}
MENO_SCYLLA_TABLE_CHAT: {{ $s.tables.chat | quote }}
MENO_SCYLLA_TABLE_CHAT_BUCKETS: {{ $s.tables.chatBuckets | quote }}
MENO_SCYLLA_TABLE_CHAT_BY_CLIENT_REF: {{ $s.tables.chatByClientRef | quote }}
MENO_SCYLLA_TABLE_CHAT_BY_SENDER_REF: {{ $s.tables.chatBySenderRef | quote }}
MENO_SCYLLA_TABLE_READ_POSITIONS: {{ $s.tables.readPositions | quote }}
MENO_SCYLLA_TABLE_CHAT_BY_ID: {{ $s.tables.chatById | quote }}
MENO_SCYLLA_TABLE_CONNECTION_REGISTRY: {{ $s.tables.connectionRegistry | quote }}
MENO_SCYLLA_TABLE_CONNECTION_REGISTRY_BY_SESSION: {{ $s.tables.connectionRegistryBySession | quote }}
MENO_SCYLLA_TABLE_CONNECTION_REGISTRY_BY_USER: {{ $s.tables.connectionRegistryByUser | quote }}
MENO_SCYLLA_TABLE_PRESENCE: {{ $s.tables.presence | quote }}
MENO_SCYLLA_TABLE_CONNECTIONS: {{ $s.tables.connections | quote }}
MENO_SCYLLA_TABLE_CONNECTIONS_BY_USER: {{ $s.tables.connectionsByUser | quote }}
MENO_SCYLLA_TABLE_CORE_REPLICAS: {{ $s.tables.coreReplicas | quote }}
MENO_SCYLLA_TABLE_SESSION_OWNERS: {{ $s.tables.sessionOwners | quote }}
MENO_CREATE_KEYSPACE: {{ $s.replication.createKeyspace | quote }}
MENO_REPLICATION_STRATEGY: {{ $s.replication.strategy | quote }}
{{- if $s.replication.datacenter }}
MENO_REPLICATION_DATACENTER: {{ $s.replication.datacenter | quote }}
{{- end }}
MENO_REPLICATION_FACTOR: {{ $s.replication.factor | quote }}
MENO_SCYLLA_TABLETS: {{ $s.replication.tablets | quote }}
{{- if $s.credentials.existingSecret }}
MENO_SCYLLA_PASSWORD_FILE: /etc/meno/scylla-credentials/password
{{- end }}
{{- if $s.tls.enabled }}
MENO_SCYLLA_TLS_CA: /etc/meno/scylla-ca/ca.crt
{{- end }}
{{- end }}

{{/* OpenTelemetry's standard variables (a YAML map); empty when tracing is off. */}}
{{- define "meno.otelEnv" -}}
{{- if .ctx.Values.tracing.otlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ .ctx.Values.tracing.otlpEndpoint | quote }}
OTEL_EXPORTER_OTLP_PROTOCOL: {{ .ctx.Values.tracing.otlpProtocol | quote }}
OTEL_SERVICE_NAME: {{ .service | quote }}
OTEL_TRACES_SAMPLER: parentbased_traceidratio
OTEL_TRACES_SAMPLER_ARG: {{ .ctx.Values.tracing.samplerRatio | toString | quote }}
{{- end }}
{{- end }}

{{/* The CQL user name, from the credentials Secret (env entries). */}}
{{- define "meno.scyllaUserEnv" -}}
{{- with .Values.store.scylla.credentials }}
{{- if .existingSecret }}
- name: MENO_SCYLLA_USER
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .usernameKey }}
{{- end }}
{{- end }}
{{- end }}

{{/* Volumes of the ScyllaDB credentials and CA. */}}
{{- define "meno.scyllaVolumes" -}}
{{- $s := .Values.store.scylla }}
{{- if $s.credentials.existingSecret }}
- name: scylla-credentials
  secret:
    secretName: {{ $s.credentials.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $s.credentials.passwordKey }}
        path: password
{{- end }}
{{- if $s.tls.enabled }}
- name: scylla-ca
{{- if $s.tls.existingSecret }}
  secret:
    secretName: {{ $s.tls.existingSecret }}
    defaultMode: 0444
    items:
      - key: {{ $s.tls.caKey }}
        path: ca.crt
{{- else }}
  configMap:
    name: {{ $s.tls.existingConfigMap }}
    defaultMode: 0444
    items:
      - key: {{ $s.tls.caKey }}
        path: ca.crt
{{- end }}
{{- end }}
{{- end }}

{{- define "meno.scyllaVolumeMounts" -}}
{{- $s := .Values.store.scylla }}
{{- if $s.credentials.existingSecret }}
- name: scylla-credentials
  mountPath: /etc/meno/scylla-credentials
  readOnly: true
{{- end }}
{{- if $s.tls.enabled }}
- name: scylla-ca
  mountPath: /etc/meno/scylla-ca
  readOnly: true
{{- end }}
{{- end }}

{{/* A "name: value" map rendered as a container's env list. */}}
{{- define "meno.envList" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
Checks across values that the JSON schema cannot express clearly; a failed
check stops `helm install`/`helm template` with a message naming the value.
*/}}
{{- define "meno.validate" -}}
{{- $v := .Values }}
{{- if lt (int $v.core.replicas) 1 }}
{{- fail "core.replicas must be at least 1" }}
{{- end }}
{{- if and (gt (int $v.core.replicas) 1) (ne $v.store.type "scylla") }}
{{- fail (printf "core.replicas is %d, but several core replicas need store.type scylla: the %s store lives in one process, so exactly one core may run on it (ownership of sessions between replicas is recorded and fenced in ScyllaDB; see the chart README, \"Several core replicas\")" (int $v.core.replicas) $v.store.type) }}
{{- end }}
{{- if and (gt (int $v.core.replicas) 1) $v.core.tls.enabled }}
{{- fail "core.tls.enabled with core.replicas above 1 is not supported yet: bridges and replicas reach each replica at its pod IP, which the core's certificate does not name" }}
{{- end }}
{{- if eq $v.store.type "scylla" }}
{{- if not $v.store.scylla.nodes }}
{{- fail "store.scylla.nodes: give at least one host:port when store.type is scylla" }}
{{- end }}
{{- if and $v.store.scylla.tls.enabled (not (or $v.store.scylla.tls.existingSecret $v.store.scylla.tls.existingConfigMap)) }}
{{- fail "store.scylla.tls: name existingSecret or existingConfigMap holding the CA when tls.enabled is true" }}
{{- end }}
{{- if and $v.store.scylla.tls.existingSecret $v.store.scylla.tls.existingConfigMap }}
{{- fail "store.scylla.tls: name either existingSecret or existingConfigMap, not both" }}
{{- end }}
{{- if and $v.store.scylla.replication.createKeyspace (eq $v.store.scylla.replication.strategy "network-topology") (not $v.store.scylla.replication.datacenter) }}
{{- fail "store.scylla.replication.datacenter: required to create a keyspace with the network-topology strategy" }}
{{- end }}
{{- end }}
{{- if and (eq $v.auth.mode "jwt") (eq $v.auth.jwt.keySource "jwksUrl") (not $v.auth.jwt.jwksUrl) }}
{{- fail "auth.jwt.jwksUrl: required when auth.jwt.keySource is jwksUrl" }}
{{- end }}
{{- $turnUrls := 0 }}
{{- range $v.webrtc.iceServers }}{{ if or (hasPrefix "turn:" .) (hasPrefix "turns:" .) }}{{ $turnUrls = add1 $turnUrls }}{{ end }}{{ end }}
{{- if and (gt $turnUrls 0) (not $v.webrtc.turn.existingSecret) }}
{{- fail "webrtc.turn.existingSecret: name the Secret with coturn's static-auth-secret when webrtc.iceServers has turn: URLs" }}
{{- end }}
{{- if and $v.webrtc.turn.existingSecret (eq $turnUrls 0) }}
{{- fail "webrtc.turn.existingSecret is set but webrtc.iceServers has no turn: or turns: URL" }}
{{- end }}
{{- if and $v.bridge.tls.enabled (not $v.bridge.tls.existingSecret) }}
{{- fail "bridge.tls.existingSecret: name the kubernetes.io/tls Secret when bridge.tls.enabled is true" }}
{{- end }}
{{- if and $v.core.tls.enabled (not $v.core.tls.existingSecret) }}
{{- fail "core.tls.existingSecret: name the Secret (tls.crt, tls.key, ca.crt) when core.tls.enabled is true" }}
{{- end }}
{{- $bridgeMin := add (int $v.bridge.preStopSleepSeconds) (int $v.bridge.drainTimeoutSeconds) }}
{{- if and (gt (int $v.bridge.terminationGracePeriodSeconds) 0) (le (int $v.bridge.terminationGracePeriodSeconds) $bridgeMin) }}
{{- fail (printf "bridge.terminationGracePeriodSeconds must exceed preStopSleepSeconds + drainTimeoutSeconds (%d), or the bridges are killed while they drain" $bridgeMin) }}
{{- end }}
{{- if and (gt (int $v.core.terminationGracePeriodSeconds) 0) (le (int $v.core.terminationGracePeriodSeconds) (int $v.core.drainTimeoutSeconds)) }}
{{- fail (printf "core.terminationGracePeriodSeconds must exceed core.drainTimeoutSeconds (%d)" (int $v.core.drainTimeoutSeconds)) }}
{{- end }}
{{- if and $v.bridge.autoscaling.enabled (gt (int $v.bridge.autoscaling.minReplicas) (int $v.bridge.autoscaling.maxReplicas)) }}
{{- fail "bridge.autoscaling.minReplicas must not exceed maxReplicas" }}
{{- end }}
{{- end }}
