"""The fleet simulator: a vLLM replica model shared by the live fleet (HTTP servers serving
real vLLM/DCGM metric names, used by the demo and the e2e tests) and the fast in-process
discrete-event simulator (used by ``llm-autoscaler simulate`` and the benchmarks).
"""
