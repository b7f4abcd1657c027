# syntax=docker/dockerfile:1.7
# chromata review app: the curators' web app (`chromata review serve`), CPU only, no model weights needed
# at run time (it shows outputs and manifests). docker build -f docker/review.Dockerfile -t chromata-review:0.3.0 .
ARG BASE=python:3.11.11-slim-bookworm
#checkov:skip=CKV_DOCKER_7:FROM uses the BASE build arg, pinned above to python:3.11.11-slim-bookworm (checkov cannot resolve ARGs)

FROM ${BASE} AS build
ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY chromata ./chromata
COPY flows ./flows
COPY actors ./actors
RUN python -m venv /opt/chromata \
 && /opt/chromata/bin/pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}" \
 && /opt/chromata/bin/pip install ".[postgres]"

FROM ${BASE}
LABEL org.opencontainers.image.title="chromata-review" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/chromata/bin:$PATH PYTHONUNBUFFERED=1 HOME=/home/chromata
COPY --from=build /opt/chromata /opt/chromata
RUN useradd --uid 10001 --create-home --home-dir /home/chromata --shell /usr/sbin/nologin chromata
USER 10001
WORKDIR /home/chromata
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"]
ENTRYPOINT ["chromata", "review", "serve", "--host", "0.0.0.0", "--port", "8000"]
