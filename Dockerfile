# Containerised ns-3 experiments: the same install scripts as CI, scenarios pre-built, a non-root
# user, the main job as default command. Built with BuildKit (DOCKER_BUILDKIT=1); tested by
# .ci/docker-smoke.sh (`make docker`), which also shows how to build where the public base image
# cannot be pulled.
#
# Build arguments:
#   BASE_IMAGE           a Debian-based image with python3 (>= 3.10) and, if it is Debian's
#                        python, python3-venv; default the official slim Python image
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS
#                        where pip finds packages during the build (e.g. a CPU torch index or a
#                        local wheel directory served on loopback with `--network host`); used
#                        only by the dependency step, never stored in the image's environment
# Optional secret (BuildKit): `--secret id=extra_ca,src=ca.pem` adds the PEM certificates in
# ca.pem to the ones pip trusts during the build (a TLS-intercepting proxy); the file is mounted
# for that step only and is in no layer.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8 \
    VENV=/opt/venv

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# System packages (cached layer): compilers, ZeroMQ, protobuf, JSON for the scenarios; the
# Python headers and venv module where the base's python3 is Debian's (the ns3 wheel's CPyCppyy
# is compiled against Python.h).
# Versions are not pinned: the base image's release decides them, as on a developer's machine.
COPY .ci/install-system.sh /tmp/install-system.sh
# hadolint ignore=DL3008
RUN extra=(ca-certificates) \
    && if ! python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
          || ! python3 -c 'import ensurepip' 2>/dev/null; then \
         extra+=(python3-dev python3-venv); \
       fi \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${extra[@]}" \
    && bash /tmp/install-system.sh \
    && rm -rf /var/lib/apt/lists/* /tmp/install-system.sh \
    && useradd --create-home --uid 1000 iab \
    && install -d -o iab -g iab /opt/iabmeta /opt/venv

USER 1000:1000
WORKDIR /opt/iabmeta

# Dependencies (cached until pyproject.toml or the install script change): the project is
# installed without its sources, which pulls in every dependency and extra; setuptools and
# wheel are installed so that the source step below needs no index. The PIP_* arguments are
# declared here, after the system layer, so that changing them keeps that layer.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
COPY --chown=iab:iab pyproject.toml ./
COPY --chown=iab:iab .ci/install-python.sh .ci/install-python.sh
# (an empty README.md stands in for the real one, which the source step brings)
RUN --mount=type=secret,id=extra_ca,uid=1000 \
    touch README.md \
    && if [ -s /run/secrets/extra_ca ]; then \
      cat /etc/ssl/certs/ca-certificates.crt /run/secrets/extra_ca > /tmp/ca-bundle.pem; \
      export PIP_CERT=/tmp/ca-bundle.pem; \
    fi \
    && EDITABLE='' bash .ci/install-python.sh \
    && "$VENV/bin/python" -m pip install -q "setuptools>=68" wheel \
    && rm -f /tmp/ca-bundle.pem

# The scenarios depend on bridge/ and ns3_scenarios/ only: a change elsewhere keeps this layer.
COPY --chown=iab:iab ns3_scenarios ns3_scenarios
COPY --chown=iab:iab bridge bridge
RUN "$VENV/bin/python" -m bridge.ns3.build --jobs "$(nproc)"

# The sources, installed editable over the dependency-only install (offline).
COPY --chown=iab:iab . .
RUN "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .

ENV PATH=/opt/venv/bin:$PATH
WORKDIR /home/iab
CMD ["iabmeta", "reproduce", "--jobs", "2", "--out", "/home/iab/runs/default"]
