# syntax=docker/dockerfile:1.7
# chromata worker: the CLI, the Prefect flows and the Ray colorizer actors in one image.
#   CPU (default):  docker build -f docker/worker.Dockerfile -t chromata-worker:0.3.0 .
#   GPU:            docker build -f docker/worker.Dockerfile --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t chromata-worker:0.3.0-cuda .
# The CUDA wheels carry the CUDA libraries; the NVIDIA container runtime injects the driver. A CUDA base
# image can be given with BASE (it must provide python3.11 and python3.11-venv).
ARG BASE=python:3.11.11-slim-bookworm
#checkov:skip=CKV_DOCKER_7:FROM uses the BASE build arg, pinned above to python:3.11.11-slim-bookworm (checkov cannot resolve ARGs)

FROM ${BASE} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY chromata ./chromata
COPY flows ./flows
COPY actors ./actors
RUN python -m venv /opt/chromata \
 && /opt/chromata/bin/pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}" \
 && /opt/chromata/bin/pip install ".[postgres]"

FROM ${BASE}
LABEL org.opencontainers.image.title="chromata-worker" \
      org.opencontainers.image.description="chromata: colorize photo archives with provenance and review" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/chromata/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    HOME=/home/chromata
COPY --from=build /opt/chromata /opt/chromata
RUN useradd --uid 10001 --create-home --home-dir /home/chromata --shell /usr/sbin/nologin chromata
USER 10001
WORKDIR /home/chromata
HEALTHCHECK --interval=5m --timeout=30s CMD ["chromata", "version"]
ENTRYPOINT ["chromata"]
CMD ["--help"]
