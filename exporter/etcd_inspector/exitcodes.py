"""Exit codes of every command, in one place."""

EXIT_OK = 0  # fine; `inspect`: all clear
EXIT_FINDINGS = 1  # `inspect`: findings
EXIT_ERROR = 2  # usage or configuration error, or the cluster could not be inspected
EXIT_INTERRUPTED = 130  # Ctrl-C
