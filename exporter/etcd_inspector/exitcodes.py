"""Exit codes of every command, in one place."""

EXIT_OK = 0  # fine; `inspect`: all clear
EXIT_FINDINGS = 1  # `inspect`: findings
EXIT_ERROR = 2  # usage or configuration error, or the cluster could not be inspected
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_ADDRESS = 3  # `run`, `demo`: cannot listen on --web.listen-address (taken, unresolvable)
EXIT_OUTPUT = 4  # `generate`: cannot write --out (a file, not writable)
