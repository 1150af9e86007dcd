{{/* Resource names: <release>-sockhop unless the release name already says sockhop. */}}
{{- define "sockhop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sockhop.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "sockhop.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sockhop.redisName" -}}
{{- printf "%s-redis" (include "sockhop.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sockhop.secretName" -}}
{{- default (include "sockhop.fullname" .) .Values.secret.existingSecret -}}
{{- end -}}

{{- define "sockhop.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sockhop.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sockhop.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "sockhop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The hub's pods; the in-chart Redis has component "redis". */}}
{{- define "sockhop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sockhop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: hub
{{- end -}}

{{- define "sockhop.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "sockhop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end -}}

{{/* repository@digest when a digest is given, else repository:tag. */}}
{{- define "sockhop.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The hub's config.json: the user's options plus the chart's per-worker limit. */}}
{{- define "sockhop.hubConfig" -}}
{{- $config := deepCopy .Values.hub.config -}}
{{- $_ := set $config "max_connections" .Values.maxConnectionsPerWorker -}}
{{- toPrettyJson $config -}}
{{- end -}}

{{/*
A secret value: the one given, else the one the release's Secret already holds (so
upgrades keep it), else a fresh random one.
*/}}
{{- define "sockhop.secretValue" -}}
{{- $existing := lookup "v1" "Secret" .context.Release.Namespace (include "sockhop.fullname" .context) -}}
{{- if .given -}}
{{- .given -}}
{{- else if and $existing (index ($existing.data | default dict) .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 43 -}}
{{- end -}}
{{- end -}}

{{/* SIGTERM to exit with sockhop's defaults: drain_delay 5 s + drain 10 s (workers/cli.py). */}}
{{- define "sockhop.serverDrainSeconds" -}}15{{- end -}}

{{- define "sockhop.checkValues" -}}
{{- $needed := add .Values.preStopSleepSeconds (include "sockhop.serverDrainSeconds" . | int) -}}
{{- if lt (int .Values.terminationGracePeriodSeconds) (int $needed) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must cover preStopSleepSeconds (%v) + sockhop's drain (%v s)" .Values.terminationGracePeriodSeconds .Values.preStopSleepSeconds (include "sockhop.serverDrainSeconds" .)) -}}
{{- end -}}
{{- if and (not .Values.redis.enabled) (not .Values.redis.externalUrl) (not .Values.secret.existingSecret) -}}
{{- fail "set redis.externalUrl (redis://host:6379/0), or redis.enabled for an in-chart Valkey, or secret.existingSecret with a redis-url key" -}}
{{- end -}}
{{- if and .Values.redis.enabled .Values.redis.externalUrl -}}
{{- fail "redis.enabled and redis.externalUrl exclude each other" -}}
{{- end -}}
{{- $tls := .Values.redis.tls -}}
{{- if and .Values.redis.enabled (or $tls.secretName $tls.serverName) -}}
{{- fail "redis.tls is for an external Redis: the in-chart Valkey speaks no TLS" -}}
{{- end -}}
{{- if and $tls.clientCertificate (not $tls.secretName) -}}
{{- fail "redis.tls.clientCertificate needs redis.tls.secretName (the Secret with tls.crt and tls.key)" -}}
{{- end -}}
{{- if and .Values.redis.externalUrl (or $tls.secretName $tls.serverName) (not (hasPrefix "rediss" .Values.redis.externalUrl)) -}}
{{- fail "redis.tls is set, but redis.externalUrl does not ask for TLS (rediss://host:port/db)" -}}
{{- end -}}
{{- end -}}
