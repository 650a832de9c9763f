"""Prometheus metrics from the snapshot stream: buckets, cumulative state, families, HTTP.

No Textual in here; ``kvmtop.commands.export`` is the front end that runs it.
"""

DEFAULT_LISTEN = "127.0.0.1:9477"  # loopback: a non-loopback address only when given
DEFAULT_FORGET_AFTER_S = 300.0  # an exited VM's series stay this long, then go
DEFAULT_INTERVAL_S = 15.0  # polls cost CPU per interval (snapshot, encoding), not per scrape
DEFAULT_IO_TOP = 20  # --io: address series per VM (the rest are summed in address="other")
