# Watchkeeper's container image, in two variants (docs/deploy.md):
#   docker build -t watchkeeper:0.1.0 .                                         sidecar, ingest, migrate
#   docker build -t watchkeeper:0.1.0-watchers --build-arg EXTRAS=watchers .    watch, schedule (torch, ...)
# native/ (ingest's compiled span-to-row path, the sidecar's compiled redaction detectors) is
# built in a Rust stage and installed beside it.
# The Helm chart runs `watchkeeper` with the args of each component, as user 10001 on a
# read-only root file system (it mounts /tmp and /var/lib/watchkeeper as emptyDirs).
FROM rust:1-slim-bookworm AS native
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-pip python3-venv \
 && python3 -m venv /opt/maturin && /opt/maturin/bin/pip install --quiet "maturin>=1.5,<2"
COPY native /native
RUN cd /native && /opt/maturin/bin/maturin build --release --out /wheels

FROM python:3.11-slim

ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent agent
COPY collectors collectors
COPY detectors detectors
COPY dashboards dashboards
COPY --from=native /wheels /wheels
RUN pip install ".${EXTRAS:+[$EXTRAS]}" /wheels/*.whl && cd / && rm -rf /src /wheels

RUN groupadd --gid 10001 watchkeeper \
 && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin watchkeeper
USER 10001:10001
WORKDIR /tmp
ENV HOME=/tmp
# API ports: up and ingest 8686, sidecar 8687, watch 8688, schedule 8689 (the Helm chart sets one)
EXPOSE 4317 4318 8686 8687 8688 8689

ENTRYPOINT ["watchkeeper"]
CMD ["--help"]
