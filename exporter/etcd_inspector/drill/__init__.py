"""`etcd-inspector drill`: during a game day, watch a Prometheus or Alertmanager while a fault
is on (a Chaos Mesh experiment `generate` rendered) and report which expected alerts fired, how
long they took, which did not, what else fired, and whether they resolved afterwards.

alertsapi.py (the one HTTP call), httpconfig.py (Prometheus' HTTP client configuration),
timeline.py (what was seen and the verdict, pure), render.py (text and JSON), run.py (flags,
the polling loop, exit codes), arguments.py (the parser's flags)."""
