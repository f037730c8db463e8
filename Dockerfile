# Containerised ns-3 experiments: the same install scripts as CI, scenarios pre-built,
# a non-root user, the main job as default command.
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    VENV=/opt/venv

WORKDIR /opt/iabmeta

# system packages first (cached layer): compilers, ZeroMQ, protobuf, JSON
COPY .ci/install-system.sh .ci/install-system.sh
RUN bash .ci/install-system.sh && rm -rf /var/lib/apt/lists/*

COPY . .
RUN bash .ci/install-python.sh \
    && /opt/venv/bin/python -m bridge.ns3.build \
    && useradd --create-home --uid 1000 iab \
    && chown -R iab:iab /opt/iabmeta

USER 1000:1000
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /home/iab
CMD ["iabmeta", "reproduce", "--out", "/home/iab/runs/default"]
