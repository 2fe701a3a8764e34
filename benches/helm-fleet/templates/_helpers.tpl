{{- /*
Helpers of the prism-fleet chart. Values that build other values are passed around as JSON
(`include ... | fromJson`), the usual way for a Helm helper to return data.
*/ -}}

{{- /* A string made into a label value: [A-Za-z0-9_.-] only, at most 63, alphanumeric ends. */ -}}
{{- define "prism.labelValue" -}}
{{- $mapped := regexReplaceAll "[^A-Za-z0-9_.-]" . "_" | trunc 63 -}}
{{- regexReplaceAll "^[^A-Za-z0-9]+|[^A-Za-z0-9]+$" $mapped "" -}}
{{- end -}}

{{- /* The tag of an image reference (repo:tag@digest -> tag), or nothing. */ -}}
{{- define "prism.imageTag" -}}
{{- $last := index (splitList "@" .) 0 | splitList "/" | last -}}
{{- if contains ":" $last }}{{ index (splitList ":" $last) 1 }}{{ end -}}
{{- end -}}

{{- /* Recommended labels as JSON; list: name, instance, version, component. */ -}}
{{- define "prism.labels" -}}
{{- $l := dict "app.kubernetes.io/name" (index . 0) "app.kubernetes.io/instance" (index . 1) "app.kubernetes.io/component" (index . 3) "app.kubernetes.io/part-of" "prism" "app.kubernetes.io/managed-by" "prism-operator" -}}
{{- $v := include "prism.labelValue" (index . 2) -}}
{{- if $v }}{{ $_ := set $l "app.kubernetes.io/version" $v }}{{ end -}}
{{- toJson $l -}}
{{- end -}}

{{- /* Whole seconds (rounded up, at least 1) of a duration like 1m30s; list: duration, default. */ -}}
{{- define "prism.seconds" -}}
{{- $d := index . 0 | default "" -}}
{{- if regexMatch "^([0-9]+(ms|s|m|h))+$" $d -}}
{{- $units := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 -}}
{{- $ms := 0 -}}
{{- range regexFindAll "[0-9]+(ms|s|m|h)" $d -1 -}}
{{- $n := regexFind "^[0-9]+" . -}}
{{- $ms = add $ms (mul (atoi $n) (get $units (trimPrefix $n .))) -}}
{{- end -}}
{{- max 1 (div (add $ms 999) 1000) -}}
{{- else -}}
{{- max 1 (index . 1) -}}
{{- end -}}
{{- end -}}

{{- /* SHA-256 (hex) of the canonical JSON of each part, one per line: the config hash. */ -}}
{{- define "prism.hashJson" -}}
{{- $text := "" -}}
{{- range . }}{{ $text = printf "%s%s\n" $text (toJson .) }}{{ end -}}
{{- sha256sum $text -}}
{{- end -}}

{{- /* PRISM_PLUGIN_<NAME>_ADDR */ -}}
{{- define "prism.addrEnv" -}}
{{- printf "PRISM_PLUGIN_%s_ADDR" (upper . | replace "-" "_") -}}
{{- end -}}

{{- /* Pod security context of every pod. */ -}}
{{- define "prism.podSecurity" -}}
{"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532, "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"}}
{{- end -}}

{{- /* Security context of every container. */ -}}
{{- define "prism.containerSecurity" -}}
{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
{{- end -}}

{{- /* metadata of a rendered object; dict: name, namespace, labels, annotations (optional). */ -}}
{{- define "prism.metadata" }}
  name: {{ .name | toJson }}
  namespace: {{ .namespace | toJson }}
  labels: {{ .labels | toJson }}
{{- if .annotations }}
  annotations: {{ .annotations | toJson }}
{{- end }}
{{- end -}}

{{- /* The proxy's configuration file, laid out as prism-render writes it (keys sorted). */ -}}
{{- define "prism.proxyConfig" -}}
{{- $spec := .shard.spec -}}
{{- if $spec.backends }}
backends:
{{- range $spec.backends }}
- {{ . }}
{{- end }}
{{- else }}
backends: []
{{- end }}
dataDir: /var/lib/prism
{{- if .plugins }}
plugins:
{{- range .plugins }}
{{- if hasKey . "address" }}
- address: {{ .address }}
  deployment: {{ .deployment }}
{{- else }}
- deployment: {{ .deployment }}
{{- end }}
  name: {{ .name }}
{{- if hasKey . "path" }}
  path: {{ .path }}
{{- end }}
  version: {{ .version }}
{{- end }}
{{- else }}
plugins: []
{{- end }}
ports:
  data: 8980
  metrics: 9090
shard:
  feature: {{ $spec.feature | default "null" }}
  name: {{ .shard.metadata.name }}
  namespace: {{ .shard.metadata.namespace }}
  product: {{ $spec.product }}
  slaTier: {{ $spec.slaTier | default "null" }}
{{ end -}}
