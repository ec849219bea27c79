"""Findings, below the probes: the Finding model (findings), the thresholds checks compare
with (thresholds) and the text helpers every report section uses (format).

The report built from the probes' results, and its text and JSON renderings, sit above the
probes in render/.
"""
