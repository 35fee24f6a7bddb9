"""``ponder eval``: run a dataset through strategy configurations and measure them.

Accuracy (with a 95% interval), latency, sequential and all tokens (B_seq, B_total), engine
calls per configuration, against a running Ponder server. Not imported by
``ponder.clients``: it needs the ``eval`` extra (sympy via math-verify,
matplotlib, rich).
"""
