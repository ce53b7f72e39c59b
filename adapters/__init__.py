"""Everything that touches the outside world, behind small ``Protocol`` seams.

Kubernetes (kubernetes-asyncio), Prometheus (PromQL, batched per signal), direct pod
scraping (exposition parsing) and DCGM-to-pod attribution. Adapters produce
:class:`policies.signals.MetricsSnapshot` values; they never invent a 0 for a missing value.
"""
