# monitor in a container: config in /config, data in /data.
FROM python:3.11.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    MONITOR_CONFIG=/config/monitor.toml
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin monitor \
    && mkdir -p /config /data /app && chown monitor:monitor /data
WORKDIR /app
COPY pyproject.toml README.md CHANGELOG.md ./
COPY monitor ./monitor
COPY seeds ./seeds
COPY config ./config.example
RUN pip install . && cp -r config.example/. /config/
USER monitor
VOLUME ["/config", "/data"]
HEALTHCHECK --interval=60s --timeout=20s --start-period=30s --retries=3 \
    CMD ["monitor", "status"]
ENTRYPOINT ["monitor"]
CMD ["run"]
