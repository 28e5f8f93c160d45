"""Accepting submissions: one validation, name rules, per-submitter limits, the request queue."""
