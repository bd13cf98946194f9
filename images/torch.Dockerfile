# The torch model server: `python -m modelserver` in serve, worker or job mode. It serves
# torch.export programs (.pt2, torch.export.save) and MLflow folders of the pytorch flavour;
# TorchScript files still load, with a warning.
# Built with the images/ folder as context; runs as uid 10001 on a read-only root
# filesystem (everything it writes goes to /tmp, an emptyDir in the pod).
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ARG MODEL_NAME=unnamed
ARG MODEL_VERSION=0.0.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MODEL_FLAVOR=torch,mlflow \
    MODEL_NAME=${MODEL_NAME} \
    MODEL_VERSION=${MODEL_VERSION} \
    MODEL_PORT=8080 \
    MODEL_GRPC_PORT=8081 \
    MODEL_CACHE_DIR=/tmp/model \
    HOME=/tmp
LABEL org.opencontainers.image.title="modelfleet torch model server" \
      org.opencontainers.image.version="${MODEL_VERSION}" \
      dev.modelfleet.model="${MODEL_NAME}"

WORKDIR /app
COPY requirements-torch.txt /app/requirements.txt
RUN pip install --no-cache-dir --requirement /app/requirements.txt
COPY modelserver /app/modelserver

RUN groupadd --gid 10001 model && useradd --uid 10001 --gid 10001 --no-create-home model
USER 10001:10001
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MODEL_PORT', '8080') + '/v2/health/live', timeout=2)"]
ENTRYPOINT ["python", "-m", "modelserver"]
