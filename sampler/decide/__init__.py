"""Decisions: policies run on due traces, decisions remembered and recorded on kept spans."""
