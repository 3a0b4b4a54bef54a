"""The trace window: spans held per trace until the trace is due for a decision."""
