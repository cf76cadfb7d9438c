{{/* Names and labels shared by every template. */}}

{{- define "orchestrator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "orchestrator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "orchestrator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "orchestrator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: orchestrator
{{- end -}}

{{- define "orchestrator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orchestrator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "orchestrator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "orchestrator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "repository:tag", the tag defaulting to the chart's appVersion. Call with (list $ image). */}}
{{- define "orchestrator.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- end -}}

{{/* The "restricted" Pod Security Standard, for pods and for containers. */}}
{{- define "orchestrator.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "orchestrator.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Object store and state store settings, common to the operator and the API. */}}
{{- define "orchestrator.storeEnv" -}}
- name: ORCH_HOME
  value: /var/lib/orchestrator
- name: ORCH_OBJECTS__URL
  value: {{ printf "s3://%s" .Values.objectStore.s3.bucket | quote }}
- name: ORCH_OBJECTS__DEFAULT_BUCKET
  value: {{ .Values.objectStore.s3.bucket | quote }}
- name: ORCH_OBJECTS__S3_REGION
  value: {{ .Values.objectStore.s3.region | quote }}
{{- with .Values.objectStore.s3.endpoint }}
- name: ORCH_OBJECTS__S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.objectStore.s3.credentialsSecret.name }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.objectStore.s3.credentialsSecret.name }}
      key: AWS_SECRET_ACCESS_KEY
{{- with .Values.database.urlSecret.name }}
- name: ORCH_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.database.urlSecret.key }}
{{- end }}
{{- end -}}

{{/*
The keyring Secret is copied into the pod's writable home by an init container: Secret files
are owned by root and read-only, while the keyring must be a 0600 file of the running user.
*/}}
{{- define "orchestrator.keyringInit" -}}
- name: keyring
  image: {{ include "orchestrator.image" (list . .Values.images.api) }}
  imagePullPolicy: {{ .Values.images.api.pullPolicy }}
  command: ["install", "-D", "-m", "0600", "/etc/orchestrator/master-key/keyring.json", "/var/lib/orchestrator/keys/keyring.json"]
  securityContext:
    {{- include "orchestrator.containerSecurityContext" . | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {cpu: 100m, memory: 64Mi}
  volumeMounts:
    - name: home
      mountPath: /var/lib/orchestrator
    - name: master-key
      mountPath: /etc/orchestrator/master-key
      readOnly: true
{{- end -}}

{{- define "orchestrator.volumes" -}}
- name: home
  emptyDir: {}
- name: tmp
  emptyDir: {}
- name: master-key
  secret:
    secretName: {{ .Values.masterKey.secretName }}
    defaultMode: 0440
    items:
      - key: {{ .Values.masterKey.key }}
        path: keyring.json
{{- end -}}

{{- define "orchestrator.volumeMounts" -}}
- name: home
  mountPath: /var/lib/orchestrator
- name: tmp
  mountPath: /tmp
{{- end -}}
