# One image for the four services; compose.yaml picks the command.
#
# Build stage: the services' extras into a virtualenv, and the compiled kernels ahead of
# time (headwater/jit.py, as `make setup` builds them: an extension per kernel module in its
# __pycache__, so a service loads them without numba's JIT and its ~110 MB). The C compiler
# they need stays in this stage. The kernels are built from / so that the installed package is
# imported, not the sources in /app (which lack headwater.services: setup maps it from services/).
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY headwater ./headwater
COPY services ./services
COPY plugins ./plugins
# `pip install headwater` alone is the client SDK and CLI (pyproject.toml): the services need
# [server], and their outputs and backends the other extras ([spark] is a client library).
RUN python -m venv /opt/headwater && \
    /opt/headwater/bin/pip install --no-cache-dir ".[server,postgres,delta,nats,kafka]" && \
    cd / && /opt/headwater/bin/python -m headwater.jit \
      headwater.services.ingestion.log._kernels headwater.services.processing.exec._jsonkernels

FROM python:3.11-slim
COPY --from=build /opt/headwater /opt/headwater
ENV PATH=/opt/headwater/bin:$PATH
RUN useradd --create-home headwater && mkdir -p /var/lib/headwater && chown headwater /var/lib/headwater
USER headwater
ENV HEADWATER_HOME=/var/lib/headwater HEADWATER_HOST=0.0.0.0
EXPOSE 50051 50052 50053 50054 8080 8081 9093 9101 9102 9103 9104
CMD ["headwater", "--help"]
