# The fetch-and-verify init container: `python -m modelserver.fetch` downloads exactly the
# objects FETCH_PLAN pins (an LLM's weights, its adapters) into /models, checks every size
# and sha256, and exits non-zero on any mismatch, so the engine never starts on other bytes.
# Python, boto3 and the modelserver package only (no model libraries). Built with the
# images/ folder as context; runs as uid 10001 on a read-only root filesystem, writing only
# to the /models emptyDir.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp
LABEL org.opencontainers.image.title="modelfleet fetch-and-verify init container"

WORKDIR /app
COPY requirements-fetch.txt /app/requirements.txt
RUN pip install --no-cache-dir --requirement /app/requirements.txt
COPY modelserver /app/modelserver

RUN groupadd --gid 10001 model && useradd --uid 10001 --gid 10001 --no-create-home model
USER 10001:10001
# An init container runs to completion: Kubernetes reads its exit status, not a probe.
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "modelserver.fetch"]
