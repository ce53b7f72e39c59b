"""The real local stack: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
(built from Go modules, see ``tools/``), Debian's Prometheus, and the fleet simulator.

Used by ``llm-autoscaler stack up|down|status``, ``make demo``, the e2e tests and the
benchmarks. Everything listens on loopback; nothing here ever dials another address.
"""
