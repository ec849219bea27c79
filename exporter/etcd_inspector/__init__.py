"""etcd-inspector: a Prometheus exporter that inspects etcd clusters."""

__version__ = "0.1.0"
