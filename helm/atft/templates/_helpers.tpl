{{/*
Names, labels, the container command and the pod template shared by the Master and the Worker replicas.
Invalid combinations of values fail here with a sentence (atft.validate), before anything is rendered.
*/}}

{{- define "atft.name" -}}
{{- .Values.nameOverride | default .Chart.Name -}}
{{- end -}}

{{/* The job name is the release name: PyTorchJob names must be DNS-1035 labels, and the operator names pods
<name>-worker-<index>, which must stay within 63 characters. */}}
{{- define "atft.fullname" -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" .Release.Name) -}}
{{- fail (printf "release name %q: must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter)" .Release.Name) -}}
{{- end -}}
{{- if gt (len .Release.Name) 52 -}}
{{- fail (printf "release name %q: at most 52 characters (pods are named <name>-worker-<index>)" .Release.Name) -}}
{{- end -}}
{{- .Release.Name -}}
{{- end -}}

{{- define "atft.selectorLabels" -}}
app.kubernetes.io/name: {{ include "atft.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "atft.labels" -}}
{{ include "atft.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: atft
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "atft.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "atft.fullname" .) -}}
{{- else -}}
{{- required "serviceAccount.name: required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "atft.image" -}}
{{- with .Values.image -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (.tag | default $.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "atft.runDir" -}}
{{- printf "%s/%s" .Values.runs.mountPath (include "atft.fullname" .) -}}
{{- end -}}

{{/* Processes in the whole job; more than one means torchrun starts them (nprocPerNode per pod). */}}
{{- define "atft.nproc" -}}
{{- max 1 .Values.gpusPerPod -}}
{{- end -}}

{{- define "atft.distributed" -}}
{{- if or (gt (int .Values.gpusPerPod) 1) (gt (int .Values.workers) 0) .Values.elastic.enabled -}}true{{- end -}}
{{- end -}}

{{/* Scrape mode: the monitoring section's PodMonitor scrapes the exporter, which then serves /metrics. */}}
{{- define "atft.scrape" -}}
{{- if and .Values.exporter.enabled (dig "podMonitor" "enabled" false (.Values.monitoring | default dict)) -}}true{{- end -}}
{{- end -}}

{{/* Combinations the schema cannot express. */}}
{{- define "atft.validate" -}}
{{- $v := .Values -}}
{{- if and $v.elastic.enabled (lt (int $v.workers) 1) -}}
{{- fail "elastic.enabled: needs workers >= 1 (the operator's elastic mode requires a Worker replica)" -}}
{{- end -}}
{{- if and $v.elastic.enabled (gt (int $v.elastic.minReplicas) (int $v.elastic.maxReplicas)) -}}
{{- fail (printf "elastic.minReplicas=%v is greater than elastic.maxReplicas=%v" $v.elastic.minReplicas $v.elastic.maxReplicas) -}}
{{- end -}}
{{- if and $v.elastic.enabled (gt (add1 (int $v.workers)) (int $v.elastic.maxReplicas)) -}}
{{- fail (printf "elastic.maxReplicas=%v: must be at least 1 + workers = %v" $v.elastic.maxReplicas (add1 (int $v.workers))) -}}
{{- end -}}
{{- if and (eq $v.data.source "pvc") (not $v.data.claimName) -}}
{{- fail "data.claimName: required when data.source is pvc" -}}
{{- end -}}
{{- if and (eq $v.data.source "csi") (not $v.data.csi.driver) -}}
{{- fail "data.csi.driver: required when data.source is csi" -}}
{{- end -}}
{{- if and (eq $v.data.source "none") $v.dataFile -}}
{{- fail (printf "dataFile=%q: needs a data volume, but data.source is none" $v.dataFile) -}}
{{- end -}}
{{- if and $v.exporter.enabled (not $v.exporter.pushgateway) (not (include "atft.scrape" .)) -}}
{{- fail "exporter.pushgateway: required when exporter.enabled is true, unless monitoring.podMonitor.enabled (scrape mode)" -}}
{{- end -}}
{{- end -}}

{{/* The training container's arguments: the image entrypoint is `python -m atft.train`; a distributed job
runs the same module under torchrun, which reads nnodes, node rank and the rendezvous from PET_* variables
the operator sets. --resume auto: a re-created pod continues from the run volume's last checkpoint. */}}
{{- define "atft.trainArgs" -}}
{{- if include "atft.distributed" . -}}
- -m
- atft.train
{{ end -}}
- --config
- /etc/atft/config.yaml
- --out
- {{ include "atft.runDir" . }}
- --resume
- auto
{{- if .Values.dataFile }}
- --data
- {{ printf "%s/%s" .Values.data.mountPath .Values.dataFile }}
{{- end }}
{{- end -}}

{{- define "atft.containerSecurityContext" -}}
allowPrivilegeEscalation: false
capabilities:
  drop:
    - ALL
privileged: false
readOnlyRootFilesystem: true
runAsGroup: {{ .Values.securityContext.runAsGroup }}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The exporter (`atft exporter`, cli/atft_cli/commands/exporter.py): follows the run's events.jsonl on the
shared run volume and pushes to the Pushgateway. Same image as training. As a native sidecar (restartPolicy:
Always in initContainers) it starts before and stops after the training container without keeping the pod
alive; as a plain container it exits after the run's end event so the pod can complete. */}}
{{- define "atft.exporterContainer" -}}
- name: exporter
  image: {{ include "atft.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if .Values.exporter.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  command:
    - atft
    - exporter
  args:
    - --events
    - {{ include "atft.runDir" . }}/events.jsonl
    {{- with .Values.exporter.pushgateway }}
    - --pushgateway
    - {{ . }}
    {{- end }}
    {{- if include "atft.scrape" . }}
    - --listen-port
    - {{ .Values.monitoring.podMonitor.port | quote }}
    {{- end }}
    - --interval
    - {{ .Values.exporter.interval | quote }}
    - --job
    - {{ include "atft.fullname" . }}
    - --grouping
    - namespace={{ .Release.Namespace }}
    - --grouping
    - replica_type=$(REPLICA_TYPE)
    - --grouping
    - replica_index=$(REPLICA_INDEX)
    - --grouping
    - run_id={{ include "atft.fullname" . }}
    {{- if .Values.exporter.nativeSidecar }}
    # the kubelet stops a native sidecar with SIGTERM once training ends; exiting on its own would restart it
    - --no-exit-on-end
    {{- end }}
  env:
    - name: HOME
      value: /tmp
    - name: REPLICA_INDEX
      valueFrom:
        fieldRef:
          fieldPath: metadata.labels['training.kubeflow.org/replica-index']
    - name: REPLICA_TYPE
      valueFrom:
        fieldRef:
          fieldPath: metadata.labels['training.kubeflow.org/replica-type']
  {{- if include "atft.scrape" . }}
  ports:
    - name: metrics
      containerPort: {{ .Values.monitoring.podMonitor.port }}
      protocol: TCP
  {{- end }}
  resources:
    {{- toYaml .Values.exporter.resources | nindent 4 }}
  securityContext:
    {{- include "atft.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: runs
      mountPath: {{ .Values.runs.mountPath }}
      readOnly: true
    - name: exporter-tmp
      mountPath: /tmp
{{- end -}}

{{/* The pod template of one replica type. Called with (dict "root" $ "replicaType" "Master"|"Worker"); only
the Master gets the exporter, because only rank 0 writes the event stream. */}}
{{- define "atft.podTemplate" -}}
{{- $ := .root -}}
{{- $v := $.Values -}}
{{- $gpu := gt (int $v.gpusPerPod) 0 -}}
{{- $exporter := and $v.exporter.enabled (eq .replicaType "Master") -}}
metadata:
  labels:
    {{- include "atft.labels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ lower .replicaType }}
  annotations:
    atft.dev/config-sha256: {{ $v.config | sha256sum }}
spec:
  serviceAccountName: {{ include "atft.serviceAccountName" $ }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  {{- with $v.scheduling.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $v.scheduling.schedulerName }}
  schedulerName: {{ . }}
  {{- end }}
  {{- $selector := deepCopy $v.scheduling.nodeSelector }}
  {{- if and $gpu $v.scheduling.gpuNodeLabel.key }}
  {{- $_ := set $selector $v.scheduling.gpuNodeLabel.key $v.scheduling.gpuNodeLabel.value }}
  {{- end }}
  {{- with $selector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.scheduling.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if or (and $gpu $v.scheduling.gpuToleration) $v.scheduling.tolerations }}
  tolerations:
    {{- if and $gpu $v.scheduling.gpuToleration }}
    - key: nvidia.com/gpu
      operator: Exists
      effect: NoSchedule
    {{- end }}
    {{- with $v.scheduling.tolerations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    fsGroup: {{ $v.securityContext.fsGroup }}
    fsGroupChangePolicy: OnRootMismatch
    runAsGroup: {{ $v.securityContext.runAsGroup }}
    runAsNonRoot: true
    runAsUser: {{ $v.securityContext.runAsUser }}
    seccompProfile:
      type: RuntimeDefault
  {{- if and $exporter $v.exporter.nativeSidecar }}
  initContainers:
    {{- include "atft.exporterContainer" $ | nindent 4 }}
  {{- end }}
  containers:
    - name: pytorch
      image: {{ include "atft.image" $ }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      {{- if include "atft.distributed" $ }}
      command:
        - torchrun
      {{- end }}
      args:
        {{- include "atft.trainArgs" $ | nindent 8 }}
      env:
        # generated panels are cached on the run volume, so a re-created pod does not rebuild them
        - name: ATFT_CACHE_DIR
          value: {{ $v.runs.mountPath }}/.cache/atft
        - name: ATFT_RUN_ID
          value: {{ include "atft.fullname" $ }}
        - name: HOME
          value: /tmp
        - name: MPLCONFIGDIR
          value: /tmp/matplotlib
        - name: PYTHONUNBUFFERED
          value: "1"
        {{- range $name, $value := $v.env }}
        - name: {{ $name }}
          value: {{ $value | quote }}
        {{- end }}
      resources:
        {{- $res := deepCopy $v.resources }}
        {{- if $gpu }}
        {{- $_ := set $res "requests" (merge (dict "nvidia.com/gpu" $v.gpusPerPod) ($res.requests | default dict)) }}
        {{- $_ := set $res "limits" (merge (dict "nvidia.com/gpu" $v.gpusPerPod) ($res.limits | default dict)) }}
        {{- end }}
        {{- toYaml $res | nindent 8 }}
      securityContext:
        {{- include "atft.containerSecurityContext" $ | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/atft
          readOnly: true
        {{- if ne $v.data.source "none" }}
        - name: data
          mountPath: {{ $v.data.mountPath }}
          readOnly: true
        {{- end }}
        - name: runs
          mountPath: {{ $v.runs.mountPath }}
        - name: dshm
          mountPath: /dev/shm
        - name: scratch
          mountPath: /tmp
    {{- if and $exporter (not $v.exporter.nativeSidecar) }}
    {{- include "atft.exporterContainer" $ | nindent 4 }}
    {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "atft.fullname" $ }}-config
        items:
          - key: config.yaml
            path: config.yaml
    {{- if eq $v.data.source "pvc" }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ $v.data.claimName }}
        readOnly: true
    {{- else if eq $v.data.source "csi" }}
    - name: data
      csi:
        driver: {{ $v.data.csi.driver }}
        readOnly: true
        {{- with $v.data.csi.volumeAttributes }}
        volumeAttributes:
          {{- toYaml . | nindent 10 }}
        {{- end }}
    {{- end }}
    - name: runs
      persistentVolumeClaim:
        claimName: {{ $v.runs.claimName }}
    - name: dshm
      emptyDir:
        medium: Memory
        sizeLimit: {{ $v.shmSize }}
    - name: scratch
      emptyDir:
        sizeLimit: {{ $v.scratchSize }}
    {{- if $exporter }}
    - name: exporter-tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- end }}
{{- end -}}
