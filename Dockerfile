# The champion model behind `landslide serve` (its request limits, its one-line errors), in a
# container. Export the model, build, run:
#
#   mlflow artifacts download --artifact-uri models:/landslide-ssgan@champion \
#       --dst-path serving/model
#   docker build -t landslide-serve .
#   docker run --rm -p 5001:5001 landslide-serve
#
# then POST {"inputs": raw windows (N, 13, 13, C)} to http://127.0.0.1:5001/invocations
# (docs/operations.md). `--build-arg MODEL=<folder>` bakes another exported MLflow model (for
# example one downloaded from runs:/<run id>/model). tests/test_serving_container.py runs
# this file's export command and its CMD on a small model and sends them a request (there
# is no Docker engine in CI or on the development machine: the image build is not tested).
FROM python:3.11-slim-bookworm

WORKDIR /srv
# the dependencies at the versions pinned for every install (requirements.lock)
COPY pyproject.toml requirements.lock README.md LICENSE ./
COPY src ./src
RUN pip install --no-cache-dir --disable-pip-version-check -c requirements.lock . \
    && useradd --uid 10001 --no-create-home landslide \
    && mkdir /srv/store && chown landslide /srv/store
COPY params.yaml ./
ARG MODEL=serving/model
COPY ${MODEL} ./model

USER landslide
# serve opens a tracking store; the container's own, empty and writable
ENV MLFLOW_TRACKING_URI=sqlite:////srv/store/mlflow.db \
    TF_CPP_MIN_LOG_LEVEL=3
EXPOSE 5001
CMD ["landslide", "serve", "--model-uri", "/srv/model", "--host", "0.0.0.0", "--port", "5001"]
