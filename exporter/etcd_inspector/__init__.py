"""etcd-inspector: a Prometheus exporter that inspects etcd clusters."""

import os as _os

__version__ = "0.1.0"

# gRPC's C core writes its own log lines straight to stderr (not through Python logging, so
# in neither logfmt nor JSON); it reads these at its first use, hence here, before any module
# imports grpc. Failures reach our log anyway, classified (etcd/errors.py). An operator chasing
# a gRPC problem sets GRPC_VERBOSITY=debug (and GRPC_TRACE) explicitly: that wins.
_os.environ.setdefault("GRPC_VERBOSITY", "NONE")
_os.environ.setdefault("GRPC_TRACE", "")
