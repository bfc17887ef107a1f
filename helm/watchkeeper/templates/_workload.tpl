{{/*
One Deployment of a Watchkeeper service (ingest, watch, schedule). Pass a dict:
  root       the chart's root context
  component  ingest | watch | schedule
  values     that component's values
  command    the subcommand and its flags (after `watchkeeper --config FILE`)
  replicas   the replica count
  variant    "" (base image) | "watchers"
  secrets    the secrets it reads (names under .Values.secrets)
  startupS   how long start may take (migrations, model loading) before liveness counts
  strategy   the Deployment strategy (optional)
  gpu        the GPU limit to add, {resourceName, count} (optional)
  nodeSelector, tolerations  scheduling beyond the component's own (optional)
  extraVolumes, extraMounts  more volumes (optional)
  extraEnv   more environment (optional)
*/}}
{{- define "watchkeeper.deployment" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $secrets := dict "root" $root "secrets" .secrets }}
{{- $labels := dict "root" $root "component" .component }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "watchkeeper.fullname" $root }}-{{ .component }}
  labels:
    {{- include "watchkeeper.labels" $labels | nindent 4 }}
spec:
  replicas: {{ .replicas }}
  revisionHistoryLimit: 5
  {{- with .strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "watchkeeper.selectorLabels" $labels | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "watchkeeper.selectorLabels" $labels | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include "watchkeeper.config" $root | sha256sum }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "watchkeeper.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds | default 60 }}
      containers:
        - name: {{ .component }}
          image: {{ include "watchkeeper.image" (dict "root" $root "image" $v.image "variant" .variant) | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: [watchkeeper]
          args:
            - --config
            - {{ include "watchkeeper.configDir" $root }}/config.yaml
            {{- range .command }}
            - {{ . | quote }}
            {{- end }}
          ports:
            - {name: api, containerPort: {{ $root.Values.api.port | int }}, protocol: TCP}
          env:
            {{- include "watchkeeper.commonEnv" $root | nindent 12 }}
            {{- with (include "watchkeeper.secretEnv" $secrets | trim) }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with .extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $v.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- include "watchkeeper.probes" (dict "startupS" .startupS) | nindent 10 }}
          resources:
            {{- $resources := deepCopy ($v.resources | default dict) }}
            {{- with .gpu }}
            {{- $limits := $resources.limits | default dict }}
            {{- $_ := set $limits .resourceName (.count | int) }}
            {{- $_ := set $resources "limits" $limits }}
            {{- end }}
            {{- toYaml $resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - {name: config, mountPath: {{ include "watchkeeper.configDir" $root }}/config.yaml, subPath: config.yaml, readOnly: true}
            - {name: data, mountPath: {{ include "watchkeeper.dataDir" $root }}}
            - {name: tmp, mountPath: /tmp}
            {{- with (include "watchkeeper.secretsMount" $secrets | trim) }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with .extraMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $root.Values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ include "watchkeeper.configName" $root }}
        - name: data
          emptyDir: {}
        - name: tmp
          emptyDir: {}
        {{- with (include "watchkeeper.secretsVolume" $secrets | trim) }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with .extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $root.Values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- $nodeSelector := merge (deepCopy ($v.nodeSelector | default dict)) (.nodeSelector | default dict) }}
      {{- with $nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- $tolerations := concat ($v.tolerations | default list) (.tolerations | default list) }}
      {{- with $tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* The ClusterIP Service in front of a component's API port (metrics, health). */}}
{{- define "watchkeeper.apiService" -}}
{{- $labels := dict "root" .root "component" .component }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "watchkeeper.fullname" .root }}-{{ .component }}
  labels:
    {{- include "watchkeeper.labels" $labels | nindent 4 }}
spec:
  type: {{ .root.Values.service.type }}
  selector:
    {{- include "watchkeeper.selectorLabels" $labels | nindent 4 }}
  ports:
    - {name: api, port: {{ .root.Values.api.port | int }}, targetPort: api, protocol: TCP, appProtocol: http}
{{- end }}
