{{/* Name of the chart, overridable. */}}
{{- define "bespoke.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "bespoke.fullname" -}}
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

{{/* Chart label value. */}}
{{- define "bespoke.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "bespoke.labels" -}}
helm.sh/chart: {{ include "bespoke.chart" . }}
{{ include "bespoke.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: bespoke
{{- end }}

{{/* Labels that select the operator pod. */}}
{{- define "bespoke.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bespoke.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Name of the operator's ServiceAccount. */}}
{{- define "bespoke.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bespoke.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}; the tag defaults to the chart's appVersion so
the images move with the chart. A digest, when given, pins the image.
Usage: include "bespoke.image" (dict "image" .Values.operator.image "root" .)
*/}}
{{- define "bespoke.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag }}
{{- if .image.digest }}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* Namespaces the operator watches, as a list; empty in cluster mode. */}}
{{- define "bespoke.watchNamespaces" -}}
{{- if eq .Values.watch.mode "namespaces" }}
{{- if not .Values.watch.namespaces }}
{{- fail "watch.namespaces must list at least one namespace when watch.mode is namespaces" }}
{{- end }}
{{- toJson .Values.watch.namespaces }}
{{- else }}
{{- toJson list }}
{{- end }}
{{- end }}

{{/* Extra labels on every alert. */}}
{{- define "bespoke.alertLabels" -}}
{{- range $key, $value := .Values.prometheusRule.additionalAlertLabels }}
{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end }}
