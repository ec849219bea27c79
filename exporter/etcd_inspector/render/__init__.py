"""The report, above the probes: one cluster's inspection built from its probes' results
(inspection: ClusterInspection, findings, exit code), the JSON document (jsondoc) and the text
report (text). `inspect`, the JSON API and the status page render the same model.
"""
