"""Imported by the document workers' fork server (one per daemon process): the story models
are loaded once there and shared by every worker forked from it (copy-on-write), instead of
once per worker and again each time a worker is recycled."""

from monitor.stories.features import warm

warm()
