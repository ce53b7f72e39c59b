{{- define "llm-autoscaler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llm-autoscaler.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "llm-autoscaler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-autoscaler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "llm-autoscaler.labels" -}}
{{ include "llm-autoscaler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "llm-autoscaler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "llm-autoscaler.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "llm-autoscaler.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "llm-autoscaler.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "llm-autoscaler.fullname" .)) .Values.tls.secretName -}}
{{- end -}}

{{/* "auto" | true | false -> "true" or "" (monitoring.coreos.com/v1 objects) */}}
{{- define "llm-autoscaler.monitoring" -}}
{{- $v := .value | toString -}}
{{- if eq $v "auto" -}}
{{- if .ctx.Capabilities.APIVersions.Has "monitoring.coreos.com/v1" -}}true{{- end -}}
{{- else if eq $v "true" -}}true
{{- else if ne $v "false" -}}
{{- fail (printf "expected auto, true or false, got %q" $v) -}}
{{- end -}}
{{- end -}}

{{/* The TLS mode, validated. */}}
{{- define "llm-autoscaler.tlsMode" -}}
{{- $m := .Values.tls.mode -}}
{{- if not (has $m (list "helm" "cert-manager" "service")) -}}
{{- fail (printf "tls.mode must be helm, cert-manager or service, got %q" $m) -}}
{{- end -}}
{{- $m -}}
{{- end -}}
