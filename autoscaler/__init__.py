"""The llm-autoscaler service: CLI, settings, wiring, the local stack and the fleet simulator.

Sub-packages: ``stack`` (the real local Kubernetes + Prometheus stack used by the demo, the
e2e tests and the benchmarks), ``sim`` (the vLLM/DCGM fleet simulator and the trace tools).
"""

__version__ = "0.1.0"
