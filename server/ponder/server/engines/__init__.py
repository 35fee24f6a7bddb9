"""Inference engines: HTTP replicas, their pool, and engines Ponder starts itself."""
