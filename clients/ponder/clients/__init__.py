"""The Python SDK for a Ponder server (sync and async clients).

Not written yet: it is the subject of its own issue. Until then, the
``openai`` package talks to Ponder as the README shows.
"""
