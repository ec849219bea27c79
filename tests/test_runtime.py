"""Per-cluster runtime pieces built once at start."""

import ssl

from etcd_inspector.config import ClusterConfig, EndpointConfig, TLSConfig
from etcd_inspector.runtime.runtime import metrics_ssl_context


def cluster(metrics_url: str, **kw) -> ClusterConfig:
    return ClusterConfig(
        name="c", endpoints=(EndpointConfig("https://10.0.0.1:2379", metrics_url),), **kw
    )


def test_plain_http_metrics_need_no_tls_context() -> None:
    assert metrics_ssl_context(cluster("http://10.0.0.1:2381/metrics")) is None


def test_https_metrics_use_metrics_tls_before_the_clusters_tls() -> None:
    ctx = metrics_ssl_context(
        cluster(
            "https://10.0.0.1:2379/metrics",
            tls=TLSConfig(),
            metrics_tls=TLSConfig(insecure_skip_verify=True),
        )
    )
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    strict = metrics_ssl_context(cluster("https://10.0.0.1:2379/metrics"))
    assert strict is not None and strict.verify_mode == ssl.CERT_REQUIRED
