"""The receivers (OTLP over gRPC and HTTP, Zipkin) and what they share: credentials, connection
bounds, and splitting each request per trace into a `DecodedBatch` for the engine."""
