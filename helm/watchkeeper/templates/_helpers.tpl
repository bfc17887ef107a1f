{{/*
Names, labels, images, the rendered config, secrets as files, and the sidecar container.
Templates an app chart may include: "watchkeeper.sidecarContainer", "watchkeeper.sidecarVolumes",
"watchkeeper.appEnv" and "watchkeeper.config" (see docs/deploy.md); each takes the root context of this chart, or a
dict with Values (this chart's values, defaults included), Release and Chart.
*/}}

{{- define "watchkeeper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "watchkeeper.fullname" -}}
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

{{- define "watchkeeper.chart" -}}
{{- printf "%s-%s" .Chart.Name (.Chart.Version | default "0") | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels; pass (dict "root" $ "component" "ingest"). */}}
{{- define "watchkeeper.labels" -}}
helm.sh/chart: {{ include "watchkeeper.chart" .root }}
{{ include "watchkeeper.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | default "0" | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service | default "Helm" }}
app.kubernetes.io/part-of: watchkeeper
{{- end }}

{{- define "watchkeeper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "watchkeeper.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{- define "watchkeeper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "watchkeeper.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image of a component; pass (dict "root" $ "image" .Values.watch.image "variant" "watchers"). */}}
{{- define "watchkeeper.image" -}}
{{- $img := .root.Values.image }}
{{- $own := .image | default dict }}
{{- $repository := $own.repository | default $img.repository }}
{{- $tag := $img.tag | default .root.Chart.AppVersion }}
{{- if eq (.variant | default "") "watchers" }}
{{- $tag = printf "%s%s" $tag $img.watchersTagSuffix }}
{{- end }}
{{- printf "%s:%s" $repository ($own.tag | default $tag) }}
{{- end }}

{{- define "watchkeeper.configName" -}}
{{- printf "%s-config" (include "watchkeeper.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "watchkeeper.secretName" -}}
{{- include "watchkeeper.fullname" . }}
{{- end }}

{{- define "watchkeeper.bus" -}}
{{- printf "kafka://%s" (join "," .Values.kafka.bootstrapServers) }}
{{- end }}

{{- define "watchkeeper.dataDir" -}}/var/lib/watchkeeper{{- end }}
{{- define "watchkeeper.configDir" -}}/etc/watchkeeper{{- end }}
{{- define "watchkeeper.secretsDir" -}}/etc/watchkeeper/secrets{{- end }}

{{/*
The secrets the chart knows: values key -> the file it becomes and the config field (as a
WATCHKEEPER_* variable) that names the file. userIdSalt has no *_file twin in the config and
travels as an environment variable from its Secret.
*/}}
{{- define "watchkeeper.secretFiles" -}}
sidecarToken: {file: sidecar-token, env: WATCHKEEPER_SIDECAR__TOKEN_FILE}
apiToken: {file: api-token, env: WATCHKEEPER_API__TOKEN_FILE}
clickhousePassword: {file: clickhouse-password, env: WATCHKEEPER_STORE__PASSWORD_FILE}
clickhouseReaderPassword: {file: clickhouse-reader-password, env: WATCHKEEPER_STORE__READER_PASSWORD_FILE}
kafkaSaslPassword: {file: kafka-sasl-password, env: WATCHKEEPER_KAFKA__SASL_PASSWORD_FILE}
pseudonymKey: {file: pseudonym-key, env: WATCHKEEPER_SIDECAR__REDACTION__PSEUDONYM_KEY_FILE}
{{- end }}

{{/*
Where one secret comes from, as YAML {name, key}, or nothing when it is not configured.
Pass (dict "root" $ "secret" "sidecarToken"); "secretName" overrides the chart's Secret name
(the migrate hook has its own copy).
*/}}
{{- define "watchkeeper.secretRef" -}}
{{- $s := index .root.Values.secrets .secret }}
{{- if not (include "watchkeeper.secretInUse" .) }}
{{- else if $s.existingSecret }}
name: {{ $s.existingSecret }}
key: {{ $s.key }}
{{- else if or $s.value $s.generate }}
name: {{ .secretName | default (include "watchkeeper.secretName" .root) }}
key: {{ $s.key }}
{{- end }}
{{- end }}

{{/* True unless a switch turns the secret's user off (the reader password with
clickhouse.reader.enabled false): then it is neither created, nor mounted, nor named. Pass
(dict "root" $ "secret" "clickhouseReaderPassword"). */}}
{{- define "watchkeeper.secretInUse" -}}
{{- if or (ne .secret "clickhouseReaderPassword") .root.Values.clickhouse.reader.enabled }}true{{ end }}
{{- end }}

{{/* True when the chart must create its Secret. */}}
{{- define "watchkeeper.createsSecret" -}}
{{- $root := . }}
{{- range $name, $s := .Values.secrets }}
{{- if and (include "watchkeeper.secretInUse" (dict "root" $root "secret" $name)) (not $s.existingSecret) (or $s.value $s.generate) }}true{{ end }}
{{- end }}
{{- end }}

{{/*
The base64 value of a secret the chart puts into a Secret of its own (by value, or generated),
empty for one taken from an existing Secret or not configured. Same arguments as secretRef.
A generated value is the one the release's Secret holds already (lookup: kept across upgrades),
else 40 random characters, drawn once per render and remembered on the root context, so the
release's Secret and the migrate hook's copy of it (both rendered in one pass) hold the same.
*/}}
{{- define "watchkeeper.secretValue" -}}
{{- $s := index .root.Values.secrets .secret }}
{{- if and (include "watchkeeper.secretInUse" .) (not $s.existingSecret) }}
{{- if $s.value }}
{{- $s.value | toString | b64enc }}
{{- else if $s.generate }}
{{- if not (hasKey .root "watchkeeperGenerated") }}
{{- $_ := set .root "watchkeeperGenerated" dict }}
{{- end }}
{{- $cache := .root.watchkeeperGenerated }}
{{- if not (hasKey $cache .secret) }}
{{- $existing := (lookup "v1" "Secret" .root.Release.Namespace (include "watchkeeper.secretName" .root)) | default dict }}
{{- $_ := set $cache .secret (index ($existing.data | default dict) $s.key | default (randAlphaNum 40 | b64enc)) }}
{{- end }}
{{- index $cache .secret }}
{{- end }}
{{- end }}
{{- end }}

{{/* The reader account's name, refused when it is the schema owner's (migrate would replace
that user with a read-only one). */}}
{{- define "watchkeeper.readerUsername" -}}
{{- $ch := .Values.clickhouse }}
{{- if eq $ch.reader.username $ch.username }}
{{- fail (printf "clickhouse.reader.username is clickhouse.username (%s): the reader must be an account of its own, which `watchkeeper migrate --create-readonly-user` creates or replaces" $ch.username) }}
{{- end }}
{{- $ch.reader.username }}
{{- end }}

{{/*
A projected volume named "secrets" with the listed secrets that are configured, each as one
file; nothing when none is. Pass (dict "root" $ "secrets" (list "apiToken" …)).
*/}}
{{- define "watchkeeper.secretsVolume" -}}
{{- $root := .root }}
{{- $files := include "watchkeeper.secretFiles" $root | fromYaml }}
{{- $sources := list }}
{{- range .secrets }}
{{- $ref := include "watchkeeper.secretRef" (dict "root" $root "secret" . "secretName" $.secretName) | fromYaml }}
{{- if $ref }}
{{- $item := dict "key" $ref.key "path" (index $files .).file }}
{{- $sources = append $sources (dict "secret" (dict "name" $ref.name "items" (list $item))) }}
{{- end }}
{{- end }}
{{- if $sources }}
- name: {{ .volume | default "secrets" }}
  projected:
    defaultMode: 292  {{- /* 0444: readable whatever user the pod runs as */}}
    sources:
      {{- toYaml $sources | nindent 6 }}
{{- end }}
{{- end }}

{{/* The secrets volume's mount, when the volume exists. Same arguments. */}}
{{- define "watchkeeper.secretsMount" -}}
{{- if include "watchkeeper.secretsVolume" . }}
- name: {{ .volume | default "secrets" }}
  mountPath: {{ include "watchkeeper.secretsDir" .root }}
  readOnly: true
{{- end }}
{{- end }}

{{/* WATCHKEEPER_*_FILE variables for the listed secrets that are configured. Same arguments. */}}
{{- define "watchkeeper.secretEnv" -}}
{{- $root := .root }}
{{- $files := include "watchkeeper.secretFiles" $root | fromYaml }}
{{- range .secrets }}
{{- $ref := include "watchkeeper.secretRef" (dict "root" $root "secret" . "secretName" $.secretName) | fromYaml }}
{{- if $ref }}
- name: {{ (index $files .).env }}
  value: {{ printf "%s/%s" (include "watchkeeper.secretsDir" $root) (index $files .).file | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Environment every Watchkeeper container gets (a writable HOME under a read-only root). */}}
{{- define "watchkeeper.commonEnv" -}}
- name: HOME
  value: /tmp
- name: PYTHONUNBUFFERED
  value: "1"
{{- end }}

{{/*
/readyz readiness, /healthz liveness and startup, on the API port. Pass (dict "startupS" N);
"startupPath" /readyz for a native sidecar, whose startup gates the app's containers.
*/}}
{{- define "watchkeeper.probes" -}}
startupProbe:
  httpGet: {path: {{ .startupPath | default "/healthz" }}, port: api}
  periodSeconds: 5
  failureThreshold: {{ div (.startupS | default 300) 5 }}
readinessProbe:
  httpGet: {path: /readyz, port: api}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
livenessProbe:
  httpGet: {path: /healthz, port: api}
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
{{- end }}

{{/*
The agent's config file, from values: what the chart owns (bus, data_dir, listeners, store,
query limits, Kafka, watchers, jobs) with .Values.config merged over it. No secret is ever in it: their
*_file paths are set per container through WATCHKEEPER_*_FILE variables, so a container names
only the secret files it mounts.
*/}}
{{- define "watchkeeper.config" -}}
{{- $v := .Values }}
{{- $sidecar := dict
  "host" $v.sidecar.listenAddress
  "otlp_http_port" ($v.sidecar.otlpHttpPort | int)
  "otlp_grpc_port" ($v.sidecar.otlpGrpcPort | int)
  "max_body_bytes" ($v.sidecar.maxBodyBytes | int64)
  "ack_timeout_s" $v.sidecar.ackTimeoutS
  "redaction" (dict
    "enabled" $v.sidecar.redaction.enabled
    "builtin" $v.sidecar.redaction.builtin
    "patterns" $v.sidecar.redaction.patterns
    "skip_attributes" $v.sidecar.redaction.skipAttributes)
  "sampling" (dict "ratio" $v.sidecar.sampling.ratio "keep_errors" $v.sidecar.sampling.keepErrors)
  "spool" (dict "enabled" $v.sidecar.spool.enabled "max_bytes" ($v.sidecar.spool.maxBytes | int64)) }}
{{- $store := dict
  "url" $v.clickhouse.url
  "database" $v.clickhouse.database
  "username" $v.clickhouse.username
  "verify_tls" $v.clickhouse.verifyTls
  "retention_days" ($v.clickhouse.retentionDays | int)
  "replicated" $v.clickhouse.replicated }}
{{- if $v.clickhouse.cluster }}{{ $_ := set $store "cluster" $v.clickhouse.cluster }}{{ end }}
{{- if $v.clickhouse.reader.enabled }}{{ $_ := set $store "reader_username" (include "watchkeeper.readerUsername" .) }}{{ end }}
{{- $query := dict
  "max_execution_time_s" ($v.query.maxExecutionTimeS | int64)
  "max_memory_bytes" ($v.query.maxMemoryBytes | int64)
  "max_result_rows" ($v.query.maxResultRows | int64)
  "max_rows_to_read" ($v.query.maxRowsToRead | int64)
  "max_threads" ($v.query.maxThreads | int64)
  "max_concurrent" ($v.query.maxConcurrent | int64)
  "queue_timeout_s" ($v.query.queueTimeoutS | float64) }}
{{- $kafka := dict
  "topic_prefix" $v.kafka.topicPrefix
  "partitions" ($v.kafka.partitions | int)
  "replication_factor" ($v.kafka.replicationFactor | int)
  "security_protocol" $v.kafka.securityProtocol }}
{{- if $v.kafka.sasl.mechanism }}{{ $_ := set $kafka "sasl_mechanism" $v.kafka.sasl.mechanism }}{{ end }}
{{- if $v.kafka.sasl.username }}{{ $_ := set $kafka "sasl_username" $v.kafka.sasl.username }}{{ end }}
{{- $watch := dict
  "group" $v.watch.group
  "batch_max" ($v.watch.batchMax | int)
  "batch_wait_ms" ($v.watch.batchWaitMs | int)
  "device" (include "watchkeeper.watchDevice" .)
  "precision" (include "watchkeeper.watchPrecision" .) }}
{{- if kindIs "slice" $v.watch.watchers }}{{ $_ := set $watch "watchers" $v.watch.watchers }}{{ end }}
{{- $config := dict
  "data_dir" (include "watchkeeper.dataDir" .)
  "bus" (include "watchkeeper.bus" .)
  "log_level" $v.logLevel
  "log_format" $v.logFormat
  "sidecar" $sidecar
  "ingest" (dict "group" $v.ingest.group)
  "store" $store
  "api" (dict "host" "0.0.0.0" "port" ($v.api.port | int))
  "query" $query
  "kafka" $kafka
  "watch" $watch
  "schedule" (dict "jobs" $v.schedule.jobs "alpha" $v.schedule.alpha) }}
{{- $config = mergeOverwrite $config (deepCopy ($v.config | default dict)) }}
{{- toYaml $config }}
{{- end }}

{{- define "watchkeeper.watchDevice" -}}
{{- if and .Values.watch.gpu.enabled (eq .Values.watch.device "auto") }}cuda
{{- else if and .Values.watch.gpu.enabled (eq .Values.watch.device "cpu") }}
{{- fail "watch.device is cpu while watch.gpu.enabled asks for a GPU: set one or the other" }}
{{- else }}{{ .Values.watch.device }}{{ end }}
{{- end }}

{{- define "watchkeeper.watchPrecision" -}}
{{- if and .Values.watch.gpu.enabled (eq .Values.watch.precision "auto") }}bf16
{{- else }}{{ .Values.watch.precision }}{{ end }}
{{- end }}

{{/*
The sidecar container, to put next to an LLM app's container. The pod needs the volumes of
"watchkeeper.sidecarVolumes" (the config, the spool, /tmp and the secrets).
*/}}
{{- define "watchkeeper.sidecarContainer" -}}
{{- $v := .Values }}
{{- $secrets := dict "root" . "secrets" (include "watchkeeper.sidecarSecrets" . | fromYamlArray) "volume" "watchkeeper-secrets" }}
- name: watchkeeper-sidecar
  image: {{ include "watchkeeper.image" (dict "root" . "image" $v.sidecar.image) | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if $v.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  command: [watchkeeper]
  args:
    - --config
    - {{ include "watchkeeper.configDir" . }}/config.yaml
    - sidecar
    - --bus
    - {{ include "watchkeeper.bus" . | quote }}
    - --data-dir
    - {{ include "watchkeeper.dataDir" . }}
    - --api-port
    - {{ $v.api.port | int | quote }}
    - --otlp-http-port
    - {{ $v.sidecar.otlpHttpPort | int | quote }}
    - --otlp-grpc-port
    - {{ $v.sidecar.otlpGrpcPort | int | quote }}
  ports:
    - {name: otlp-grpc, containerPort: {{ $v.sidecar.otlpGrpcPort | int }}, protocol: TCP}
    - {name: otlp-http, containerPort: {{ $v.sidecar.otlpHttpPort | int }}, protocol: TCP}
    - {name: api, containerPort: {{ $v.api.port | int }}, protocol: TCP}
  env:
    {{- include "watchkeeper.commonEnv" . | nindent 4 }}
    {{- with (include "watchkeeper.secretEnv" $secrets | trim) }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with $v.sidecar.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- include "watchkeeper.probes" (dict "startupS" 60 "startupPath" (ternary "/readyz" "/healthz" $v.sidecar.native)) | nindent 2 }}
  resources:
    {{- toYaml $v.sidecar.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - {name: watchkeeper-config, mountPath: {{ include "watchkeeper.configDir" . }}/config.yaml, subPath: config.yaml, readOnly: true}
    - {name: watchkeeper-data, mountPath: {{ include "watchkeeper.dataDir" . }}}
    - {name: watchkeeper-tmp, mountPath: /tmp}
    {{- with (include "watchkeeper.secretsMount" $secrets | trim) }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
The environment an app container needs to send to its sidecar: any OpenTelemetry SDK reads
these (endpoint over loopback, and the token from the Secret as a bearer header).
*/}}
{{- define "watchkeeper.appEnv" -}}
{{- $token := include "watchkeeper.secretRef" (dict "root" . "secret" "sidecarToken") | fromYaml }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ printf "http://127.0.0.1:%d" (.Values.sidecar.otlpHttpPort | int) | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: http/protobuf
{{- if $token }}
- name: WATCHKEEPER_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $token.name }}
      key: {{ $token.key }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  value: "Authorization=Bearer%20$(WATCHKEEPER_TOKEN)"
{{- end }}
{{- end }}

{{/*
What the injector adds to a pod (agent/inject/template.py reads it): the sidecar of the values
above, but for a pod of any namespace, which can mount no ConfigMap or Secret of this one. So
its config travels in a variable (`--config env:...`), it listens on the pod's loopback only
(no token needed there), its probes run inside the container, and the only secret, Kafka's
SASL password and the pseudonym key when they are configured, come from Secrets of the app's
namespace.
*/}}
{{- define "watchkeeper.injectionTemplate" -}}
{{- $v := .Values }}
{{- $config := pick (include "watchkeeper.config" . | fromYaml) "bus" "data_dir" "log_level" "log_format" "sidecar" "api" "kafka" "wal" }}
{{- $_ := set $config.sidecar "host" "127.0.0.1" }}
{{- $_ := set $config "api" (dict "host" "127.0.0.1" "port" ($v.api.port | int)) }}
{{- $probe := printf "import urllib.request as r; r.urlopen('http://127.0.0.1:%d/readyz', timeout=2)" ($v.api.port | int) }}
{{- $exec := dict "exec" (dict "command" (list "python" "-I" "-S" "-c" $probe)) }}
native: {{ $v.sidecar.native }}
otlp_http_port: {{ $v.sidecar.otlpHttpPort | int }}
otlp_grpc_port: {{ $v.sidecar.otlpGrpcPort | int }}
protocol: {{ $v.injector.protocol }}
container:
  name: watchkeeper-sidecar
  image: {{ include "watchkeeper.image" (dict "root" . "image" $v.sidecar.image) | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command: [watchkeeper]
  args: [--config, "env:WATCHKEEPER_CONFIG_YAML", sidecar, --data-dir, {{ include "watchkeeper.dataDir" . }}]
  env:
    - name: WATCHKEEPER_CONFIG_YAML
      value: {{ toYaml $config | quote }}
    {{- include "watchkeeper.commonEnv" . | nindent 4 }}
    {{- if $v.kafka.sasl.mechanism }}
    - name: WATCHKEEPER_KAFKA__SASL_PASSWORD
      valueFrom:
        secretKeyRef: {name: {{ $v.injector.kafkaSaslPasswordSecret.name }}, key: {{ $v.injector.kafkaSaslPasswordSecret.key }}}
    {{- end }}
    {{- if include "watchkeeper.secretRef" (dict "root" . "secret" "pseudonymKey") }}
    - name: WATCHKEEPER_SIDECAR__REDACTION__PSEUDONYM_KEY
      valueFrom:
        secretKeyRef: {name: {{ $v.injector.pseudonymKeySecret.name }}, key: {{ $v.injector.pseudonymKeySecret.key }}}
    {{- end }}
    {{- with $v.sidecar.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  startupProbe:
    {{- toYaml (merge (dict "periodSeconds" 2 "failureThreshold" 30 "timeoutSeconds" 3) $exec) | nindent 4 }}
  readinessProbe:
    {{- toYaml (merge (dict "periodSeconds" 10 "failureThreshold" 3 "timeoutSeconds" 3) $exec) | nindent 4 }}
  livenessProbe:
    {{- toYaml (merge (dict "periodSeconds" 20 "failureThreshold" 3 "timeoutSeconds" 5) $exec) | nindent 4 }}
  resources:
    {{- toYaml $v.sidecar.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - {name: watchkeeper-data, mountPath: {{ include "watchkeeper.dataDir" . }}}
    - {name: watchkeeper-tmp, mountPath: /tmp}
volumes:
  - name: watchkeeper-data
    emptyDir:
      {{- with $v.sidecar.spool.medium }}
      medium: {{ . }}
      {{- end }}
      sizeLimit: {{ $v.sidecar.spool.sizeLimit }}
  - name: watchkeeper-tmp
    emptyDir:
      sizeLimit: 64Mi
{{- end }}

{{/* The secrets a sidecar reads: never the ClickHouse password (it lives in every app pod). */}}
{{- define "watchkeeper.sidecarSecrets" -}}
[sidecarToken, apiToken, kafkaSaslPassword, pseudonymKey]
{{- end }}

{{/* The volumes the sidecar container mounts, for the app pod's volumes list. */}}
{{- define "watchkeeper.sidecarVolumes" -}}
{{- $v := .Values }}
- name: watchkeeper-config
  configMap:
    name: {{ include "watchkeeper.configName" . }}
- name: watchkeeper-data
  emptyDir:
    {{- with $v.sidecar.spool.medium }}
    medium: {{ . }}
    {{- end }}
    sizeLimit: {{ $v.sidecar.spool.sizeLimit }}
- name: watchkeeper-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- include "watchkeeper.secretsVolume" (dict "root" . "secrets" (include "watchkeeper.sidecarSecrets" . | fromYamlArray) "volume" "watchkeeper-secrets") }}
{{- with $v.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}
