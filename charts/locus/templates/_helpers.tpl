{{/*
The objects keep the fixed names of manifests/base whatever the release is
called: the scheduler's name (spec.schedulerName: locus-scheduler), its
Lease, the ConfigMap that kubectl locus reads and the roles that name them
all depend on them. One release per cluster.
*/}}

{{/* Labels on every object: Helm's, beside those of manifests/base. */}}
{{- define "locus.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: locus
{{- end }}

{{/* The pods' labels, and the Deployment's and the PDB's selector. */}}
{{- define "locus.selectorLabels" -}}
app.kubernetes.io/name: locus-scheduler
{{- end }}

{{- define "locus.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
