"""Everything that talks to etcd: the read-only gRPC adapter, TLS, logins, /metrics fetching.

gRPC's C core writes its own log lines straight to stderr (TLS handshake failures among them),
in its own format. They are off unless the user asks for them with GRPC_VERBOSITY: the adapter
reports every failure itself, in one line and in the exporter's log format.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")
