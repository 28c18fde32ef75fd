{{- define "dce-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dce-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "dce-operator.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "dce-operator.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "dce-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dce-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dce-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "dce-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "dce-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dce-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dce-operator.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
The operator's settings files (the principal policy template, extra aws-nuke filters), as
ConfigMap data; empty when none is set.
*/}}
{{- define "dce-operator.settingsFiles" -}}
{{- with .Values.config.principalPolicyTemplate }}
principal-policy.json: {{ . | quote }}
{{- end }}
{{- with .Values.reset.nukeFilters }}
nuke-filters.yaml: {{ toYaml . | quote }}
{{- end }}
{{- with .Values.api.oidc.caBundle }}
oidc-ca.pem: {{ . | quote }}
{{- end }}
{{- end }}

{{/* The Secret holding the REST API's TLS certificate and key. */}}
{{- define "dce-operator.apiTlsSecret" -}}
{{- .Values.api.tls.secretName | default (printf "%s-api-tls" (include "dce-operator.fullname" .)) -}}
{{- end }}
