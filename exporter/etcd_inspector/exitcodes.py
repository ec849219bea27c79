"""Exit codes of every command, in one place."""

EXIT_OK = 0  # fine; `inspect`: all clear
EXIT_FINDINGS = 1  # `inspect`: findings
EXIT_ERROR = 2  # usage or configuration error, or the cluster could not be inspected
EXIT_INTERRUPTED = 130  # Ctrl-C
# `snapshot`: why no snapshot was written (the partial file is always removed)
EXIT_SNAPSHOT_DESTINATION = 3  # --out is missing, not a directory, or not writable
EXIT_SNAPSHOT_NO_SPACE = 4  # the destination filled up (ENOSPC, EDQUOT)
EXIT_SNAPSHOT_ETCD = 5  # no member could stream a snapshot, or the stream broke
EXIT_SNAPSHOT_CORRUPT = 6  # what arrived is not whole (hash mismatch, not a bbolt file)
# `snapshot --out s3://...`: nothing was published; the previous newest stays the newest
EXIT_SNAPSHOT_NO_BUCKET = 7  # the bucket does not exist
EXIT_SNAPSHOT_ACCESS_DENIED = 8  # the credentials may not list, write or delete there
EXIT_SNAPSHOT_CREDENTIALS = 9  # none found, or the key id or secret is wrong
EXIT_SNAPSHOT_CREDENTIALS_EXPIRED = 10  # the (session, web identity) credentials expired
EXIT_SNAPSHOT_ENDPOINT = 11  # the endpoint cannot be reached, or does not answer as S3
EXIT_SNAPSHOT_UPLOAD_BROKE = 12  # the connection broke or timed out mid-upload
# `run`, `demo`, `generate`
EXIT_ADDRESS = 3  # `run`, `demo`: cannot listen on --web.listen-address (taken, unresolvable)
EXIT_OUTPUT = 4  # `generate`: cannot write --out (a file, not writable)
# `drill` (1: an expected alert did not fire, or did not resolve; 2: bad flags or experiment file)
EXIT_API_UNREACHABLE = 3  # no answer from the alerts API (refused, timeout, DNS, TLS, HTTP 5xx)
EXIT_API_REFUSED = 4  # it answered, but not as an alerts API (404, not JSON) or refused the login
