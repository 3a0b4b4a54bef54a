"""`tail-sampler simulate`: recorded traces replayed offline through a config's policies."""
