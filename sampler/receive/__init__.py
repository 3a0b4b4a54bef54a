"""OTLP receivers: gRPC and HTTP, both decoding into `DecodedBatch`es."""
