{{- define "prism-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "prism-operator.serviceAccountName" -}}
{{- default (include "prism-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "prism-operator.selectorLabels" -}}
app.kubernetes.io/name: prism-operator
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "prism-operator.labels" -}}
{{ include "prism-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: prism
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end -}}

{{- /* The files the operator reads: a JSON list of {name, path (where mounted), source (the volume)}. */ -}}
{{- define "prism-operator.files" -}}
{{- $prometheus := .Values.prometheus -}}
{{- $files := list -}}
{{- if .Values.webhook.certManager.enabled -}}
{{- $files = append $files (dict "name" "webhook-tls" "path" "/var/run/prism/webhook-tls" "source" (dict "secret" (dict "secretName" (printf "%s-webhook-tls" (include "prism-operator.fullname" .)) "items" (list (dict "key" "tls.crt" "path" "tls.crt") (dict "key" "tls.key" "path" "tls.key"))))) -}}
{{- end -}}
{{- if and $prometheus.url $prometheus.tokenSecret -}}
{{- $files = append $files (dict "name" "prometheus-token" "path" "/var/run/prism/prometheus-token" "source" (dict "secret" (dict "secretName" $prometheus.tokenSecret "items" (list (dict "key" "token" "path" "token"))))) -}}
{{- end -}}
{{- if and $prometheus.url $prometheus.caConfigMap -}}
{{- $files = append $files (dict "name" "prometheus-ca" "path" "/var/run/prism/prometheus-ca" "source" (dict "configMap" (dict "name" $prometheus.caConfigMap "items" (list (dict "key" "ca.crt" "path" "ca.crt"))))) -}}
{{- end -}}
{{- if and $prometheus.url $prometheus.queries -}}
{{- $files = append $files (dict "name" "prometheus-queries" "path" "/var/run/prism/prometheus-queries" "source" (dict "configMap" (dict "name" (printf "%s-prometheus-queries" (include "prism-operator.fullname" .))))) -}}
{{- end -}}
{{- if and .Values.tracing.otlpEndpoint .Values.tracing.caConfigMap -}}
{{- $files = append $files (dict "name" "otlp-ca" "path" "/var/run/prism/otlp-ca" "source" (dict "configMap" (dict "name" .Values.tracing.caConfigMap "items" (list (dict "key" "ca.crt" "path" "ca.crt"))))) -}}
{{- end -}}
{{- with .Values.adminTLS.caConfigMap -}}
{{- $files = append $files (dict "name" "admin-ca" "path" "/var/run/prism/admin-ca" "source" (dict "configMap" (dict "name" . "items" (list (dict "key" "ca.crt" "path" "ca.crt"))))) -}}
{{- end -}}
{{- with .Values.adminTLS.clientSecret -}}
{{- $files = append $files (dict "name" "admin-client" "path" "/var/run/prism/admin-client" "source" (dict "secret" (dict "secretName" . "items" (list (dict "key" "tls.crt" "path" "tls.crt") (dict "key" "tls.key" "path" "tls.key"))))) -}}
{{- end -}}
{{- toJson $files -}}
{{- end -}}
