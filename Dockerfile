# recmon: synthetic per-tenant monitor. Multi-stage: build a virtual environment in the first
# stage, copy only it into a slim runtime that has no compilers and runs as a non-root user.
#
#   docker build -t recmon .
#   docker run --rm -p 9464:9464 -v "$PWD/probes.yaml:/etc/recmon/probes.yaml:ro" recmon
#   docker run --rm -v ... recmon once --config /etc/recmon/probes.yaml      # CronJob mode

FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
# Every dependency ships wheels: nothing is compiled, so no build tools are needed here either.
RUN python -m venv /opt/recmon \
    && /opt/recmon/bin/pip install . \
    && /opt/recmon/bin/pip uninstall --yes pip

FROM python:3.12-slim
LABEL org.opencontainers.image.title="recmon" \
      org.opencontainers.image.description="Synthetic per-tenant monitor for search and recommendations APIs"
RUN groupadd --system --gid 10001 recmon \
    && useradd --system --uid 10001 --gid recmon --home-dir /var/lib/recmon --create-home recmon
COPY --from=build /opt/recmon /opt/recmon
ENV PATH=/opt/recmon/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RECMON_LOG_FORMAT=json
WORKDIR /var/lib/recmon
USER 10001:10001
EXPOSE 9464
# /healthz answers 200 while the event loop runs on time. The container listens on every
# interface (metrics.listen defaults to 127.0.0.1, unreachable through -p): protect the status
# page with metrics.web_config_file (TLS, basic auth) where the port is reachable by others.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["recmon"]
CMD ["run", "--config", "/etc/recmon/probes.yaml", "--listen", "0.0.0.0:9464"]
