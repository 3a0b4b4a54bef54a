"""Commands beside the daemon: the offline simulator and the load generator."""
