# syntax=docker/dockerfile:1
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TAIL_SAMPLER_CONFIG=/app/config/sampler.yaml \
    TAIL_SAMPLER_ADMIN_ENDPOINT=0.0.0.0:8888 \
    TAIL_SAMPLER_OUTPUT=/tmp/sampled-traces.jsonl

WORKDIR /app
COPY pyproject.toml README.md ./
COPY sampler ./sampler
COPY config ./config
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin sampler

# Nothing is written outside /tmp, so the root filesystem can be mounted read-only.
USER 10001
EXPOSE 4317 4318 8888
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8888/healthz', timeout=2)"]
ENTRYPOINT ["tail-sampler"]
CMD ["run"]
