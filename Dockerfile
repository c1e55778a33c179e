# Customer segmentation (Kedro + Snowpark) in one image: runtime dependencies only.
#
#   docker build -t segmentation .
#   docker run --rm segmentation                                   # kedro run, embedded warehouse
#   docker run --rm segmentation kedro run --pipelines=prediction   # one pipeline
#   docker run --rm --env-file snowflake.env segmentation          # real Snowflake (SNOWFLAKE_*)
#   docker run --rm -p 4141:4141 segmentation kedro viz run --host 0.0.0.0 --no-browser
#
# No credential is ever baked in: SNOWFLAKE_* come from `-e` / `--env-file` at run time only.
# Sizes and build times: docs/docker.md.

# ---- 1. dependencies: a virtualenv with requirements.txt only (runtime; test and lint tools are in
# requirements-dev.txt). Rebuilt only when requirements.txt changes. The virtualenv has no pip nor
# setuptools (the base image's pip installs into it): nothing installs packages at run time.
FROM python:3.11-slim AS dependencies

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# binutils (strip) in this throw-away stage only
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*

COPY requirements.txt /tmp/requirements.txt
# Then, to stay well under 800 MB above the base image, drop what never runs here:
# - the packages' own test suites (about 105 MB; pandas alone ships 32 MB of them);
# - debug info of the native libraries that ship it (about 30 MB: uvloop, the connector's
#   nanoarrow, lz4, ...); only files with a .debug_info section are touched, and only their
#   debug sections (strip never rewrites the patchelf-edited libraries such as OpenBLAS);
# - pyarrow's Arrow Flight RPC (36 MB): nothing imports pyarrow.flight, no other library links it.
# The byte-code (.pyc) stays: without it every container start recompiles ~4,000 modules (+5 s).
# Figures: docs/docker.md.
RUN python -m venv --without-pip /opt/venv \
 && python -m pip --python /opt/venv/bin/python install --no-cache-dir -r /tmp/requirements.txt \
 && site=/opt/venv/lib/python3.11/site-packages \
 && find "$site" -depth -mindepth 2 -type d -name tests -prune -exec rm -rf {} + \
 && find "$site" -type f -name '*.so*' -exec sh -c \
      'for f; do if readelf -S "$f" 2>/dev/null | grep -q "\.debug_info"; then strip --strip-debug "$f"; fi; done' sh {} + \
 && rm -f "$site"/pyarrow/libarrow_flight.so* "$site"/pyarrow/libarrow_python_flight.so* "$site"/pyarrow/_flight.*.so \
 && rm -rf /opt/venv/share/jupyter /tmp/requirements.txt

# ---- 2. the project as a wheel (own stage, so a source change never touches the dependencies layer)
FROM python:3.11-slim AS wheel

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/build && /opt/build/bin/pip install --no-cache-dir "setuptools>=68"
WORKDIR /build
COPY pyproject.toml requirements.txt requirements-dev.txt requirements-excel.txt requirements-explorer.txt README.md ./
COPY src ./src
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# ---- 3. runtime: the virtualenv, the project's wheel and its Kedro files; nothing else
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KEDRO_DISABLE_TELEMETRY=true

RUN useradd --create-home --no-log-init --uid 10001 --user-group --shell /bin/sh kedro

COPY --from=dependencies /opt/venv /opt/venv

WORKDIR /app
COPY --from=wheel /wheels /tmp/wheels
RUN /usr/local/bin/python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-deps /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels

# The Kedro project: pyproject.toml, conf/, src/ (kedro requires the source folder), .telemetry;
# conf/local and data/ are kept out by .dockerignore.
COPY . .
# data/ (embedded warehouse, models, reports), logs/ and kedro-viz's .viz/ are the only writable
# places. conf/local is where a credentials.yml can be mounted (read-only).
RUN mkdir -p conf/local logs .viz \
      data/01_raw data/02_intermediate data/03_primary data/04_feature data/05_model_input \
      data/06_models data/07_model_output data/08_reporting data/warehouse \
 && chown -R kedro:kedro data logs .viz

USER 10001:10001

EXPOSE 4141
# Python turns SIGINT into KeyboardInterrupt: `docker stop` ends kedro (PID 1) at once and cleanly.
STOPSIGNAL SIGINT
# `docker run IMAGE` runs every pipeline; pass a command to run something else, e.g.
# `docker run IMAGE kedro run --pipelines=prediction`.
CMD ["kedro", "run"]
