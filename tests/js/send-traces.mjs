// Sends checkout traces to a tail sampler with the OpenTelemetry JavaScript SDK and prints
// what it sent as JSON. Usage: node send-traces.mjs grpc|http ENDPOINT COUNT
//   grpc: ENDPOINT is host:port; http: ENDPOINT is the full /v1/traces URL.
// The first trace fails (a span with status ERROR), the others succeed. Each trace has four
// spans: the server span, a database call, and a payment call with its HTTP request.
import { context, diag, DiagConsoleLogger, DiagLogLevel, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { OTLPTraceExporter as GrpcTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { OTLPTraceExporter as ProtoTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";

const [protocol, endpoint, countArgument] = process.argv.slice(2);
const count = Number.parseInt(countArgument, 10);
if (!["grpc", "http"].includes(protocol) || !endpoint || !(count > 0)) {
  console.error("usage: node send-traces.mjs grpc|http ENDPOINT COUNT");
  process.exit(2);
}

// Export failures are otherwise silent; the test reads them from stderr.
diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);

const exporter =
  protocol === "grpc" ? new GrpcTraceExporter({ url: `http://${endpoint}` }) : new ProtoTraceExporter({ url: endpoint });
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ "service.name": "js-checkout", "telemetry.sdk.language": "nodejs" }),
  spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 100, maxExportBatchSize: 64 })],
});
const tracer = provider.getTracer("tail-sampler-js-client", "1.0.0");

function child(name, parentContext, attributes) {
  return tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes }, parentContext);
}

const sent = [];
for (let index = 0; index < count; index += 1) {
  const failing = index === 0;
  const root = tracer.startSpan("POST /checkout", {
    kind: SpanKind.SERVER,
    attributes: { "http.request.method": "POST", "http.route": "/checkout" },
  });
  const rootContext = trace.setSpan(context.active(), root);
  child("SELECT orders", rootContext, { "db.system.name": "postgresql" }).end();
  const payment = child("charge", rootContext, { "payment.provider": "visa" });
  const request = child("POST /v1/charges", trace.setSpan(rootContext, payment), { "http.request.method": "POST" });
  if (failing) {
    request.recordException(new Error("card declined"));
    request.setStatus({ code: SpanStatusCode.ERROR, message: "card declined" });
    root.setStatus({ code: SpanStatusCode.ERROR });
  }
  request.end();
  payment.end();
  root.end();
  sent.push({ trace_id: root.spanContext().traceId, spans: 4, error: failing });
}

await provider.forceFlush();
await provider.shutdown();
console.log(JSON.stringify({ traces: sent }));
