"""The report: findings, the per-cluster model, and its text and JSON renderings.

Submodules: findings (the Finding model), model (ClusterInspection, findings, exit code),
jsondoc (the JSON document), text (the text report), format (shared text helpers).
"""
