{{/* Names: the usual Helm scheme, truncated to 63 characters because they become label values. */}}
{{- define "pinak.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pinak.fullname" -}}
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

{{- define "pinak.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pinak.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Selector labels: fixed for the life of a release (a Deployment's selector is immutable). */}}
{{- define "pinak.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pinak.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "pinak.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "pinak.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pinak
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* An image reference from {repository, tag, digest}: repo:tag, or repo:tag@digest when a
digest is set (the tag then only documents it). An empty tag is the chart's appVersion. */}}
{{- define "pinak.imageRef" -}}
{{- $tag := default .appVersion .image.tag }}
{{- if .image.digest }}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{- define "pinak.image" -}}
{{- include "pinak.imageRef" (dict "image" .Values.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{/* The API pods' image: `apiImage` when it names a repository, else the operator's own image
(one image holds both programs). */}}
{{- define "pinak.apiImage" -}}
{{- if .Values.apiImage.repository }}
{{- include "pinak.imageRef" (dict "image" .Values.apiImage "appVersion" .Chart.AppVersion) }}
{{- else }}
{{- include "pinak.image" . }}
{{- end }}
{{- end }}
