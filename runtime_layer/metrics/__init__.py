"""Metrics behind one small provider interface: Prometheus in containers, EMF on Lambda.

`MetricsProvider` is what the app and the Lambda handler call; each implementation lives in its own module
and is imported only where it is used, so the Lambda handler never loads prometheus-client.
"""

from .noop import NoopMetrics
from .provider import MetricsProvider

__all__ = ["MetricsProvider", "NoopMetrics"]
