# Watchkeeper's container image, in two variants (docs/deploy.md):
#   docker build -t watchkeeper:0.1.0 .                                         sidecar, ingest, migrate
#   docker build -t watchkeeper:0.1.0-watchers --build-arg EXTRAS=watchers .    watch, schedule (torch, ...)
# The Helm chart runs `watchkeeper` with the args of each component, as user 10001 on a
# read-only root file system (it mounts /tmp and /var/lib/watchkeeper as emptyDirs).
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
RUN pip install ".${EXTRAS:+[$EXTRAS]}" && cd / && rm -rf /src

RUN groupadd --gid 10001 watchkeeper \
 && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin watchkeeper
USER 10001:10001
WORKDIR /tmp
ENV HOME=/tmp
EXPOSE 4317 4318 8686

ENTRYPOINT ["watchkeeper"]
CMD ["--help"]
