"""Prometheus metrics from the snapshot stream: buckets, cumulative state, families, HTTP.

No Textual in here; ``kvmtop.commands.export`` is the front end that runs it.
"""
