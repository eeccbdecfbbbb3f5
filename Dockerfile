# monitor in a container: config in /config, data in /data.
FROM python:3.11.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    MONITOR_CONFIG=/config/monitor.toml \
    MONITOR_DATABASE_URL=sqlite:////data/monitor.db \
    MONITOR_SEEDS=/app/seeds
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin monitor \
    && mkdir -p /config /data /app && chown monitor:monitor /data
WORKDIR /app
COPY pyproject.toml constraints.txt README.md CHANGELOG.md ./
COPY monitor ./monitor
COPY seeds ./seeds
COPY config ./config.example
# every dependency at the exact version of constraints.txt
RUN pip install --no-cache-dir -c constraints.txt . && cp -r config.example/. /config/
USER monitor
VOLUME ["/config", "/data"]
# with [http] enabled: the daemon's own /healthz (scheduler ticking, database answering);
# without: the database answers
HEALTHCHECK --interval=60s --timeout=20s --start-period=60s --retries=3 \
    CMD ["monitor", "health"]
ENTRYPOINT ["monitor"]
CMD ["run"]
