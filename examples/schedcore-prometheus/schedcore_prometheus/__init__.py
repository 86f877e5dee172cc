"""Prometheus metrics for schedcore: the worked example of the plugin author's guide."""

from schedcore_prometheus.plugin import DEFAULT_ADDR, DEFAULT_PORT, LATENESS_BUCKETS, PrometheusPlugin, plugin

__all__ = ["DEFAULT_ADDR", "DEFAULT_PORT", "LATENESS_BUCKETS", "PrometheusPlugin", "plugin"]
