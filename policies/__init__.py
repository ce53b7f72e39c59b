"""Pure scaling math: no I/O, no clock reads.

Everything here is a function of (metrics snapshot, resolved spec, previous state, ``now``).
The signal types in :mod:`policies.signals` are the contract between the metric adapters
(which produce snapshots) and the policies (which consume them).
"""
