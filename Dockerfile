# syntax=docker/dockerfile:1
# python:3.11-slim (CPython 3.11.16 on Debian trixie), pinned by the digest of its multi-arch
# image index, so a rebuild starts from the same base. To move on: resolve the tag's current
# digest (docker buildx imagetools inspect python:3.11-slim), rebuild, run the tests.
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# Stage 1: wheels of the daemon and of everything it installs, at the versions constraints.txt pins.
# The daemon's own wheel is the compiled build (TAIL_SAMPLER_MYPYC=1, see setup.py): its hot path
# compiled with mypyc, which needs a C compiler here and nowhere else. Its build requirements
# (mypy, setuptools) are installed first from the pins and used without build isolation, since an
# isolated build environment would not read the constraints.
FROM ${PYTHON_IMAGE} AS wheels
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TAIL_SAMPLER_MYPYC=1
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY constraints.txt pyproject.toml setup.py README.md ./
COPY build_backend ./build_backend
COPY sampler ./sampler
# The `demo` extra (the OpenTelemetry SDK) serves `loadgen`, which deploy/compose runs from this
# image, and the daemon's optional self-tracing.
RUN pip install --constraint constraints.txt setuptools mypy \
    && pip wheel --no-build-isolation --wheel-dir /wheels --constraint constraints.txt '.[demo]' \
    && cp constraints.txt /wheels/

# Stage 2: the runtime, with the wheels installed and nothing to build them.
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TAIL_SAMPLER_CONFIG=/app/config/sampler.yaml \
    TAIL_SAMPLER_ADMIN_ENDPOINT=0.0.0.0:8888 \
    TAIL_SAMPLER_OUTPUT=/tmp/sampled-traces.jsonl
WORKDIR /app
# The image refuses to build if the hot path did not come out compiled.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels --constraint /wheels/constraints.txt 'tail-sampler[demo]' \
    && python -c "from sampler.receive import wire_split; assert wire_split.COMPILED, 'not compiled'" \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin sampler
COPY config ./config

# TAIL_SAMPLER_ADMIN_ENDPOINT wins over the config file's admin.endpoint (and `run
# --admin-endpoint` over both), so the published admin port and the HEALTHCHECK work with a
# config of your own mounted at /app/config/sampler.yaml. Nothing is written outside /tmp, so
# the root filesystem can be mounted read-only.
USER 10001
EXPOSE 4317 4318 8888
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8888/healthz', timeout=2)"]
ENTRYPOINT ["tail-sampler"]
CMD ["run"]
