"""Vigil Relay's benchmark suite: ``python -m benchmarks`` (see ``benchmarks/README.md``).

Measures what issue 5 asks of the relay (CPU per delivered GB and per frame,
latency, loss, peak memory, the cost of an idle session) against the reference
Node peer of ``shared/bench``, with a load generator of its own.
"""
