{{- define "tail-sampler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tail-sampler.fullname" -}}
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

{{- define "tail-sampler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tail-sampler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: sampler
{{- end }}

{{/* Labels of every object but the component's. */}}
{{- define "tail-sampler.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "tail-sampler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tail-sampler.labels" -}}
{{ include "tail-sampler.commonLabels" . }}
app.kubernetes.io/component: sampler
{{- end }}

{{/* The receivers the config enables, as a list of {name, port, appProtocol}; each must listen
on all interfaces, or the Services and probes reach nothing. */}}
{{- define "tail-sampler.receiverPorts" -}}
{{- $receivers := .Values.config.receivers | default dict }}
{{- $protocols := (($receivers.otlp | default dict).protocols) | default (dict "grpc" (dict "endpoint" "0.0.0.0:4317") "http" (dict "endpoint" "0.0.0.0:4318")) }}
{{- $ports := list }}
{{- range $key, $name := dict "grpc" "otlp-grpc" "http" "otlp-http" }}
{{- with get $protocols $key }}
{{- $ports = append $ports (dict "name" $name "key" (printf "receivers.otlp.protocols.%s.endpoint" $key) "endpoint" (.endpoint | default (ternary "0.0.0.0:4317" "0.0.0.0:4318" (eq $key "grpc"))) "appProtocol" (ternary "grpc" "http" (eq $key "grpc"))) }}
{{- end }}
{{- end }}
{{- with $receivers.zipkin }}
{{- $ports = append $ports (dict "name" "zipkin" "key" "receivers.zipkin.endpoint" "endpoint" (.endpoint | default "0.0.0.0:9411") "appProtocol" "http") }}
{{- end }}
{{- $result := list }}
{{- range $ports }}
{{- $host := regexReplaceAll ":[0-9]+$" .endpoint "" }}
{{- if not (has $host (list "" "0.0.0.0" "[::]")) }}
{{- fail (printf "config.%s is %q: in a pod it must listen on all interfaces, e.g. \"0.0.0.0:%s\"" .key .endpoint (regexFind "[0-9]+$" .endpoint)) }}
{{- end }}
{{- $result = append $result (dict "name" .name "port" (regexFind "[0-9]+$" .endpoint | int) "appProtocol" .appProtocol) }}
{{- end }}
{{- toJson $result }}
{{- end }}

{{/* Memory request and limit in MiB, by the memory-sizing rule of docs/operations/memory.md (see values.yaml). */}}
{{- define "tail-sampler.memoryMiB" -}}
{{- $sizing := .Values.memorySizing }}
{{- $config := .Values.config }}
{{- $sampling := $config.tail_sampling | default dict }}
{{- if not $sampling.memory_limit_mib }}
{{- fail "config.tail_sampling.memory_limit_mib must be set: the pods' memory is sized from it, and an unbounded window outgrows any limit" }}
{{- end }}
{{- $caches := $sampling.decision_cache | default dict }}
{{- $sampled := hasKey $caches "sampled_cache_size" | ternary $caches.sampled_cache_size $sizing.defaults.sampledCacheSize }}
{{- $notSampled := hasKey $caches "non_sampled_cache_size" | ternary $caches.non_sampled_cache_size $sizing.defaults.notSampledCacheSize }}
{{- $cachesBytes := addf (mulf $sampled $sizing.sampledDecisionBytes) (mulf $notSampled $sizing.notSampledDecisionBytes) }}
{{- $batch := (($config.batch | default dict).send_batch_max_bytes) | default $sizing.defaults.sendBatchMaxBytes }}
{{- $forwarding := 0.0 }}
{{- range $name, $exporter := $config.exporters }}
{{- $queue := (($exporter | default dict).sending_queue) | default dict }}
{{- $consumers := $queue.num_consumers | default $sizing.defaults.numConsumers }}
{{- if eq (regexReplaceAll "/.*$" $name "") "file" }}{{ $consumers = 1 }}{{ end }}
{{- $batches := addf 1 (mulf 2 $consumers) }}
{{- if not $queue.storage }}
{{- $batches = addf $batches ($queue.queue_size | default $sizing.defaults.queueSize) }}
{{- end }}
{{- $forwarding = addf $forwarding (mulf $batches $batch) }}
{{- end }}
{{- $mib := addf $sizing.baselineMiB $sampling.memory_limit_mib (divf $cachesBytes 1048576) $sizing.requestsInFlightMiB (divf $forwarding 1048576) $sizing.extraMiB }}
{{- ceil $mib | int }}
{{- end }}

{{/* The config without what the daemon reloads in place (sampler/reload.py,
RELOADABLE_SAMPLING_KEYS): its checksum on the pod template rolls the pods for any other change.
Without reload.watch_file, nothing reloads: the whole config. */}}
{{- define "tail-sampler.restartConfig" -}}
{{- $config := deepCopy .Values.config }}
{{- if dig "reload" "watch_file" true $config }}
{{- $_ := set $config "tail_sampling" (omit ($config.tail_sampling | default dict) "policies" "sample_on_first_match" "drop_pending_traces_on_shutdown" "record_policy") }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* Paths the config writes to, each of which must be on a writable volume. */}}
{{- define "tail-sampler.checkWrittenPaths" -}}
{{- $config := .Values.config }}
{{- $paths := dict }}
{{- range $name, $exporter := $config.exporters }}
{{- with dig "sending_queue" "storage" "directory" "" ($exporter | default dict) }}
{{- $_ := set $paths (printf "exporters.%s.sending_queue.storage.directory" $name) . }}
{{- end }}
{{- with dig "path" "" ($exporter | default dict) }}
{{- $_ := set $paths (printf "exporters.%s.path" $name) . }}
{{- end }}
{{- end }}
{{- with dig "tail_sampling" "storage" "directory" "" $config }}
{{- $_ := set $paths "tail_sampling.storage.directory" . }}
{{- end }}
{{- with dig "tail_sampling" "decision_cache" "persist_path" "" $config }}
{{- $_ := set $paths "tail_sampling.decision_cache.persist_path" . }}
{{- end }}
{{- $durable := trimSuffix "/" .Values.persistence.mountPath }}
{{- range $key, $path := $paths }}
{{- $underTmp := hasPrefix "/tmp/" $path }}
{{- $underData := and $.Values.persistence.enabled (hasPrefix (printf "%s/" $durable) $path) }}
{{- if not (or $underTmp $underData) }}
{{- if $.Values.persistence.enabled }}
{{- fail (printf "config.%s is %q: the root filesystem is read-only; put it under persistence.mountPath (%s) to keep it across restarts, or under /tmp" $key $path $durable) }}
{{- else }}
{{- fail (printf "config.%s is %q: the root filesystem is read-only; set persistence.enabled and put it under persistence.mountPath (%s), or under /tmp (lost with the pod)" $key $path $durable) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
