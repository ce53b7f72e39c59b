"""One module per ``llm-autoscaler`` sub-command (see :mod:`autoscaler.cli`)."""
