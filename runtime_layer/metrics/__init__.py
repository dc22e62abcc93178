"""Metrics behind one small provider interface: Prometheus in containers, EMF on Lambda."""
