"""The cluster model, below the probes: members and their names (members), discovery
(membership), the typed topology, the immutable state and the supervisor a probe's own tasks
run under. What runs the probes is in runtime/.
"""
