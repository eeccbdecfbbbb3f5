"""The web desk: read-only pages over what the monitor stored (stories, articles, search, feeds,
digests, trends), served by the daemon's ``[http]`` listener (``ops.serve``).

``pages`` decides what each page shows and renders it (Jinja2, autoescaped, overridable like the
digest's templates); ``auth`` decides who may see it. Nothing here writes to the database.
"""
