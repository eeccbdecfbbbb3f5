"""monitor: a self-hosted media-monitoring and alerting daemon.

The pipeline, one module per stage::

    fetch.py -> feeds.py -> extract.py -> dedup.py -> match.py -> store/ -> digest.py -> notify/

``pipeline.py`` runs those stages for one feed, ``service.py`` runs one cycle over all feeds and
watchlists, ``scheduler.py`` repeats cycles, and ``cli.py`` is the only place that turns errors
into exit codes.
"""

__version__ = "0.1.0"

import os as _os

# numpy (folding, in match.py) needs no BLAS; OpenBLAS would reserve tens of MiB of address
# space per core in every process, which counts against a document worker's memory limit.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


from monitor.memory import limit_arenas as _limit_arenas

_limit_arenas()
