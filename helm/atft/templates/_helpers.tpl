{{/*
Names, labels, the container command and the pod spec shared by every pod the chart renders: the PyTorchJob's
Master and Worker, the TrainingRuntime's node, the TrainJob's patch of an upstream runtime's node, the report
Job. Invalid combinations of values fail here with a sentence (atft.validate), before anything is rendered.
*/}}

{{- define "atft.name" -}}
{{- .Values.nameOverride | default .Chart.Name -}}
{{- end -}}

{{/* The job name is the release name: PyTorchJob and TrainJob names must be DNS-1035 labels, and the pods'
hostnames (<name>-worker-<index> of a PyTorchJob, <name>-node-0-<index> of a TrainJob) must stay within 63
characters. */}}
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

{{/* Labels of a fold job of a cluster validation (validation.id set), on the job and its pods: `atft status
--validation ID` selects by the id. Label values are strings, so fold and seed are quoted. */}}
{{- define "atft.validationLabels" -}}
{{- with .Values.validation -}}
{{- if .id -}}
atft.dev/validation-id: {{ .id }}
atft.dev/fold: {{ printf "%d" (int .fold) | quote }}
atft.dev/seed: {{ printf "%d" (int .seed) | quote }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The run directory: <runs.mountPath>/<release> for a run of its own. A fold job of a validation writes where
`atft validate --report-only` reads it: <runs.mountPath>/<id>/runs/fold-<KK>-seed-<S> (KK: the fold, two digits),
the name atft.validate.plan.FoldRun gives the same run. */}}
{{- define "atft.runDir" -}}
{{- $v := .Values -}}
{{- if $v.validation.id -}}
{{- printf "%s/%s/runs/fold-%02d-seed-%d" $v.runs.mountPath $v.validation.id (int $v.validation.fold) (int $v.validation.seed) -}}
{{- else -}}
{{- printf "%s/%s" $v.runs.mountPath (include "atft.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Training processes per pod (PyTorchJob nprocPerNode, TrainJob numProcPerNode): one per GPU, one without. */}}
{{- define "atft.nproc" -}}
{{- max 1 .Values.gpusPerPod -}}
{{- end -}}

{{- define "atft.distributed" -}}
{{- if or (gt (int .Values.gpusPerPod) 1) (gt (int .Values.workers) 0) .Values.elastic.enabled -}}true{{- end -}}
{{- end -}}

{{/* The command of a job with more than one process: torchrun, through atft's wrapper (atft.train.torchrun),
because torchrun itself exits 1 on SIGTERM after its workers checkpointed and exited 143, and the exit-code
restart rules read 1 as a permanent failure: the wrapper exits 143, so a preempted job is retried. */}}
{{- define "atft.torchrun" -}}
- python
- -m
- atft.train.torchrun
{{- end -}}

{{/* Scrape mode: the monitoring section's PodMonitor scrapes the exporter, which then serves /metrics. */}}
{{- define "atft.scrape" -}}
{{- if and .Values.exporter.enabled (dig "podMonitor" "enabled" false (.Values.monitoring | default dict)) -}}true{{- end -}}
{{- end -}}

{{/* The upstream runtime of a TrainJob: what the TrainJob cannot change in its pods must not be asked for. A
TrainJob's runtimePatches may add volumes and set a container's env, securityContext and volumeMounts, but add
no container and set no priorityClassName or schedulerName (Trainer v2.3.0's CRD). */}}
{{- define "atft.upstreamRuntime" -}}
{{- if and (eq .Values.target "trainjob") (not .Values.trainjob.runtime.create) (not .Values.validation.report) -}}true{{- end -}}
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
{{- if and (not $v.validation.id) (or $v.validation.report $v.validation.fold $v.validation.seed) -}}
{{- fail "validation.report, validation.fold and validation.seed: only mean something with validation.id; set validation.id to the validation's id" -}}
{{- end -}}
{{- if and (eq $v.target "trainjob") $v.elastic.enabled (not $v.validation.report) -}}
{{- fail "elastic.enabled: a TrainJob has no elastic mode (Kubeflow Trainer v2 runs a fixed number of nodes); set elastic.enabled=false, or target=pytorchjob" -}}
{{- end -}}
{{- if and (include "atft.upstreamRuntime" .) $v.exporter.enabled -}}
{{- fail "exporter.enabled: a TrainJob cannot add the exporter sidecar to the upstream runtime's pods; set trainjob.runtime.create=true (the chart's runtime carries it), or exporter.enabled=false" -}}
{{- end -}}
{{- if include "atft.upstreamRuntime" . -}}
{{- range $key := list "priorityClassName" "schedulerName" -}}
{{- if get $v.scheduling $key -}}
{{- fail (printf "scheduling.%s: a TrainJob cannot set it in the upstream runtime's pods; set trainjob.runtime.create=true (the chart's runtime carries it), or leave it empty" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The training container's arguments: the image entrypoint is `python -m atft.train`; a distributed job
runs the same module under torchrun, which reads nnodes, node rank and the rendezvous from PET_* variables
the operator sets (training-operator v1 and Trainer v2 alike). --resume auto: a re-created pod continues from
the run volume's last checkpoint. A fold job of a validation trains its fold and seed of the same config. */}}
{{- define "atft.trainArgs" -}}
{{- if include "atft.distributed" . -}}
- -m
- atft.train
{{ end -}}
- --config
- /etc/atft/config.yaml
{{- if .Values.validation.id }}
- --set
- split.fold={{ int .Values.validation.fold }}
- --set
- seed={{ int .Values.validation.seed }}
{{- end }}
- --out
- {{ include "atft.runDir" . }}
- --resume
- auto
{{- if .Values.dataFile }}
- --data
- {{ printf "%s/%s" .Values.data.mountPath .Values.dataFile }}
{{- end }}
{{- end -}}

{{/* The training container's environment (the TrainJob's trainer.env is the same list). */}}
{{- define "atft.trainEnv" -}}
# generated panels are cached on the run volume, so a re-created pod does not rebuild them
- name: ATFT_CACHE_DIR
  value: {{ .Values.runs.mountPath }}/.cache/atft
- name: ATFT_RUN_ID
  value: {{ include "atft.fullname" . }}
- name: HOME
  value: /tmp
- name: MPLCONFIGDIR
  value: /tmp/matplotlib
- name: PYTHONUNBUFFERED
  value: "1"
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* The training container's resources: the values' resources plus nvidia.com/gpu = gpusPerPod. */}}
{{- define "atft.trainResources" -}}
{{- $v := .Values -}}
{{- $res := deepCopy $v.resources -}}
{{- if gt (int $v.gpusPerPod) 0 -}}
{{- $_ := set $res "requests" (merge (dict "nvidia.com/gpu" $v.gpusPerPod) ($res.requests | default dict)) -}}
{{- $_ := set $res "limits" (merge (dict "nvidia.com/gpu" $v.gpusPerPod) ($res.limits | default dict)) -}}
{{- end -}}
{{- toYaml $res -}}
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

{{- define "atft.podSecurityContext" -}}
fsGroup: {{ .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
runAsGroup: {{ .Values.securityContext.runAsGroup }}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Labels of a pod: the chart's, its component (master, worker, node) and a fold job's validation labels. */}}
{{- define "atft.podLabels" -}}
{{ include "atft.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- with include "atft.validationLabels" .root }}
{{ . }}
{{- end }}
{{- end -}}

{{/* nodeSelector, affinity and tolerations of a pod; called with (dict "root" $ "gpu" BOOL): a GPU pod also
gets the GPU model's node label and the toleration of the GPU taint. Empty when there is nothing to place. */}}
{{- define "atft.placement" -}}
{{- $v := .root.Values -}}
{{- $selector := deepCopy $v.scheduling.nodeSelector -}}
{{- if and .gpu $v.scheduling.gpuNodeLabel.key -}}
{{- $_ := set $selector $v.scheduling.gpuNodeLabel.key $v.scheduling.gpuNodeLabel.value -}}
{{- end -}}
{{- $gpuToleration := and .gpu $v.scheduling.gpuToleration -}}
{{- with $selector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.scheduling.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if or $gpuToleration $v.scheduling.tolerations }}
tolerations:
  {{- if $gpuToleration }}
  - key: nvidia.com/gpu
    operator: Exists
    effect: NoSchedule
  {{- end }}
  {{- with $v.scheduling.tolerations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Volume mounts of the training container; (dict "root" $ "shm" BOOL): shm adds /dev/shm (DataLoader
workers; the report Job has none). */}}
{{- define "atft.mounts" -}}
{{- $v := .root.Values -}}
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
{{- if .shm }}
- name: dshm
  mountPath: /dev/shm
{{- end }}
- name: scratch
  mountPath: /tmp
{{- end -}}

{{/* The pod's volumes; (dict "root" $ "shm" BOOL "exporter" BOOL), shm as in atft.mounts, exporter adds the
exporter's /tmp. */}}
{{- define "atft.volumes" -}}
{{- $ := .root -}}
{{- $v := $.Values -}}
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
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
- name: runs
  persistentVolumeClaim:
    claimName: {{ $v.runs.claimName }}
{{- if .shm }}
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ $v.shmSize }}
{{- end }}
- name: scratch
  emptyDir:
    sizeLimit: {{ $v.scratchSize }}
{{- if .exporter }}
- name: exporter-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
{{- end -}}

{{/* The exporter (`atft exporter`, cli/atft_cli/commands/exporter.py): follows the run's events.jsonl on the
shared run volume and pushes to the Pushgateway. Same image as training. As a native sidecar (restartPolicy:
Always in initContainers) it starts before and stops after the training container without keeping the pod
alive; as a plain container it exits after the run's end event so the pod can complete. Its replica labels
come from the pod's labels: training-operator v1's in a PyTorchJob, JobSet's in a TrainJob (the job
completion index is the node rank). */}}
{{- define "atft.exporterContainer" -}}
{{- $trainjob := eq .Values.target "trainjob" -}}
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
    {{- if $trainjob }}
    # every node pod of a TrainJob has this sidecar, but only rank 0 writes events: the others push nothing
    - --replica-index
    - $(REPLICA_INDEX)
    {{- end }}
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
          fieldPath: metadata.labels['{{ ternary "batch.kubernetes.io/job-completion-index" "training.kubeflow.org/replica-index" $trainjob }}']
    - name: REPLICA_TYPE
      valueFrom:
        fieldRef:
          fieldPath: metadata.labels['{{ ternary "jobset.sigs.k8s.io/replicatedjob-name" "training.kubeflow.org/replica-type" $trainjob }}']
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

{{/* The pod template of a training pod. Called with (dict "root" $ "container" NAME "component" COMPONENT
"exporter" BOOL): the PyTorchJob's Master ("pytorch", "master", with the exporter) and Worker ("pytorch",
"worker", without: only rank 0 writes the event stream); the TrainingRuntime's node ("node", "node", with the
exporter: every node pod has the same template, and --replica-index idles the sidecar of all but rank 0). The
container names are the ones training-operator v1 and Trainer v2 look for. */}}
{{- define "atft.podTemplate" -}}
{{- $ := .root -}}
{{- $v := $.Values -}}
{{- $exporter := .exporter -}}
metadata:
  labels:
    {{- include "atft.podLabels" (dict "root" $ "component" .component) | nindent 4 }}
  annotations:
    atft.dev/config-sha256: {{ $v.config | sha256sum }}
spec:
  serviceAccountName: {{ include "atft.serviceAccountName" $ }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- if eq .container "node" }}
  # the node Job's podFailurePolicy (exit codes 1-127 fail the job at once) needs Never; restarts are JobSet's
  restartPolicy: Never
  {{- end }}
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  {{- with $v.scheduling.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $v.scheduling.schedulerName }}
  schedulerName: {{ . }}
  {{- end }}
  {{- with include "atft.placement" (dict "root" $ "gpu" (gt (int $v.gpusPerPod) 0)) | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "atft.podSecurityContext" $ | nindent 4 }}
  {{- if and $exporter $v.exporter.nativeSidecar }}
  initContainers:
    {{- include "atft.exporterContainer" $ | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .container }}
      image: {{ include "atft.image" $ }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      {{- if include "atft.distributed" $ }}
      command:
        {{- include "atft.torchrun" $ | nindent 8 }}
      {{- end }}
      args:
        {{- include "atft.trainArgs" $ | nindent 8 }}
      env:
        {{- include "atft.trainEnv" $ | nindent 8 }}
      resources:
        {{- include "atft.trainResources" $ | nindent 8 }}
      securityContext:
        {{- include "atft.containerSecurityContext" $ | nindent 8 }}
      volumeMounts:
        {{- include "atft.mounts" (dict "root" $ "shm" true) | nindent 8 }}
    {{- if and $exporter (not $v.exporter.nativeSidecar) }}
    {{- include "atft.exporterContainer" $ | nindent 4 }}
    {{- end }}
  volumes:
    {{- include "atft.volumes" (dict "root" $ "shm" true "exporter" $exporter) | nindent 4 }}
{{- end -}}

