"""What the daemon tells about itself: metrics, logs, its own traces, the admin endpoint."""
