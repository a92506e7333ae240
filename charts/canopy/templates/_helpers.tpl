{{/* Chart name, overridable with nameOverride. */}}
{{- define "canopy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: <release>-<chart> unless the release name already holds it. */}}
{{- define "canopy.fullname" -}}
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

{{/* chart label value: name-version. */}}
{{- define "canopy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "canopy.labels" -}}
helm.sh/chart: {{ include "canopy.chart" . }}
{{ include "canopy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the pods; never change them on upgrade. */}}
{{- define "canopy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "canopy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "canopy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "canopy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "canopy.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Where things are mounted in the pod (the root filesystem is read-only). */}}
{{- define "canopy.configDir" -}}/etc/canopy{{- end }}
{{- define "canopy.tlsDir" -}}/var/run/canopy/tls{{- end }}
{{- define "canopy.generatedDir" -}}/var/run/canopy/generated{{- end }}
{{- define "canopy.clientCaDir" -}}/var/run/canopy/client-ca{{- end }}
{{- define "canopy.tokenFileDir" -}}/var/run/canopy/tokens{{- end }}
{{- define "canopy.upstreamDir" -}}/var/run/canopy/upstream{{- end }}

{{/* Name of the CA Secret the generated serving certificates are signed with ("" = per pod). */}}
{{- define "canopy.caSecretName" -}}
{{- if not .Values.tls.existingSecret }}
{{- if .Values.tls.generated.caSecret }}
{{- .Values.tls.generated.caSecret }}
{{- else if .Values.tls.generated.createCA }}
{{- printf "%s-ca" (include "canopy.fullname" .) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The in-cluster DNS name of the Service. */}}
{{- define "canopy.serviceHost" -}}
{{- printf "%s.%s.svc" (include "canopy.fullname" .) .Release.Namespace }}
{{- end }}

{{/* The URL written into tenants' kubeconfigs. */}}
{{- define "canopy.publicUrl" -}}
{{- if .Values.publicUrl }}
{{- .Values.publicUrl }}
{{- else if eq (int .Values.service.port) 443 }}
{{- printf "https://%s" (include "canopy.serviceHost" .) }}
{{- else }}
{{- printf "https://%s:%d" (include "canopy.serviceHost" .) (int .Values.service.port) }}
{{- end }}
{{- end }}

{{/*
The settings Canopy reads once at start (server, upstream, authentication). They are hashed
into a pod annotation so that changing them rolls the pods; the tree is not part of the hash
because Canopy reloads it from the mounted ConfigMap without a restart.
*/}}
{{- define "canopy.settings" -}}
server:
  listen: {{ printf "%s:%d" .Values.server.listenHost (int .Values.server.port) | quote }}
  adminListen: {{ printf "%s:%d" .Values.server.listenHost (int .Values.server.adminPort) | quote }}
  publicUrl: {{ include "canopy.publicUrl" . | quote }}
  tls:
{{- if .Values.tls.existingSecret }}
    certFile: {{ printf "%s/%s" (include "canopy.tlsDir" .) .Values.tls.certKey | quote }}
    keyFile: {{ printf "%s/%s" (include "canopy.tlsDir" .) .Values.tls.keyKey | quote }}
{{- else }}
    generatedDir: {{ include "canopy.generatedDir" . | quote }}
    extraSans:
      - {{ include "canopy.fullname" . | quote }}
      - {{ printf "%s.%s" (include "canopy.fullname" .) .Release.Namespace | quote }}
      - {{ include "canopy.serviceHost" . | quote }}
      - {{ printf "%s.%s" (include "canopy.serviceHost" .) .Values.clusterDomain | quote }}
{{- range .Values.tls.generated.extraSans }}
      - {{ . | quote }}
{{- end }}
{{- end }}
{{- if .Values.server.clientCA.secretName }}
  clientCaFile: {{ printf "%s/%s" (include "canopy.clientCaDir" .) .Values.server.clientCA.key | quote }}
{{- end }}
  shutdownGraceSeconds: {{ int .Values.server.shutdownGraceSeconds }}
{{- with .Values.server.workerThreads }}
  workerThreads: {{ int . }}
{{- end }}
  limits:
    {{- toYaml .Values.server.limits | nindent 4 }}
upstream:
  protocol: {{ .Values.upstream.protocol | quote }}
{{- if .Values.upstream.kubeconfigSecret }}
  kubeconfig: {{ printf "%s/%s" (include "canopy.upstreamDir" .) .Values.upstream.kubeconfigKey | quote }}
{{- with .Values.upstream.context }}
  context: {{ . | quote }}
{{- end }}
{{- else }}
  # No kubeconfig: Canopy uses the pod's ServiceAccount (in-cluster configuration).
{{- end }}
authentication:
{{- if .Values.authentication.tokenFileSecret }}
  tokenFile: {{ printf "%s/%s" (include "canopy.tokenFileDir" .) .Values.authentication.tokenFileKey | quote }}
{{- end }}
  tokenReview:
    {{- toYaml .Values.authentication.tokenReview | nindent 4 }}
{{- end }}

{{/* ClusterRoles the reconciler binds members to: built-ins and the custom roles' copies. */}}
{{- define "canopy.bindableClusterRoles" -}}
{{- $roles := list "admin" "edit" "view" }}
{{- range $name, $_ := (.Values.tree.roles | default dict) }}
{{- $roles = append $roles (printf "canopy:role:%s" $name) }}
{{- end }}
{{- range .Values.rbac.extraBindableClusterRoles }}
{{- $roles = append $roles . }}
{{- end }}
{{- toJson (uniq $roles) }}
{{- end }}
