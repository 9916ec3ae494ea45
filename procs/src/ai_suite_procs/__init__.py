"""Child processes for real: groups, die-with-parent, readiness probes, stop, restarts."""
