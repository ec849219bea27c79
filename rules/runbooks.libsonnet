// Adds runbook_url to every alert, in one place: runbook_url_base + the lower-cased alert
// name, which is the anchor of the alert's heading in docs/mixin.md.
{
  prometheusAlerts+:: {
    groups: [
      group {
        rules: [
          rule {
            annotations+: { runbook_url: $._config.runbook_url_base + std.asciiLower(rule.alert) },
          }
          for rule in group.rules
        ],
      }
      for group in super.groups
    ],
  },
}
