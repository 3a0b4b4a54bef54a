"""One module per exporter type, each a subclass of sampler.forward.exporter.Exporter."""
