# Customer segmentation (Kedro + Snowpark) in one image.
#
#   docker build -t segmentation .
#   docker run --rm segmentation                                   # kedro run, embedded warehouse
#   docker run --rm segmentation kedro run --pipeline=prediction   # one pipeline
#   docker run --rm --env-file snowflake.env segmentation          # real Snowflake (SNOWFLAKE_*)
#   docker run --rm -p 4141:4141 segmentation kedro viz run --host 0.0.0.0 --no-browser
#
# No credential is ever baked in: SNOWFLAKE_* come from `-e` / `--env-file` at run time only.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KEDRO_DISABLE_TELEMETRY=true

WORKDIR /app

# Dependencies first, in their own layer: rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# The Kedro project: pyproject.toml, conf/, src/ (conf/local and data/ are kept out by .dockerignore).
COPY . .
# Non-root user; data/ (embedded warehouse, models, reports), logs/ and kedro-viz's .viz/ are
# the only writable places. conf/local is where a credentials.yml can be mounted (read-only).
RUN pip install --no-cache-dir --no-deps . \
 && rm -rf build src/*.egg-info \
 && useradd --create-home --no-log-init --uid 10001 --user-group --shell /bin/sh kedro \
 && mkdir -p conf/local logs .viz \
      data/01_raw data/02_intermediate data/03_primary data/04_feature data/05_model_input \
      data/06_models data/07_model_output data/08_reporting data/warehouse \
 && chown -R kedro:kedro data logs .viz

USER 10001:10001

EXPOSE 4141
# Python turns SIGINT into KeyboardInterrupt: `docker stop` ends kedro (PID 1) at once and cleanly.
STOPSIGNAL SIGINT
# `docker run IMAGE` runs every pipeline; pass a command to run something else, e.g.
# `docker run IMAGE kedro run --pipeline=prediction`.
CMD ["kedro", "run"]
