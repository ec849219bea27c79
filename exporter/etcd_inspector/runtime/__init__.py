"""What runs the probes of a watched cluster, above the probes: its clients, state and
scheduler (runtime), the probe loops (scheduler) and the `run --config.check` TLS preflight.
"""
