# syntax=docker/dockerfile:1
# llm-autoscaler container image: `docker build -t llm-autoscaler:0.1.0 .`
# Two stages: build a wheel and install it with its dependencies into a virtualenv, then copy
# only that virtualenv onto a slim runtime image that runs as a non-root user (UID 65532,
# matching the chart's podSecurityContext). Pin the base images by digest in your registry
# mirror (`docker buildx imagetools inspect python:3.12.11-slim-bookworm`) for a
# reproducible build: BASE_IMAGE=python:3.12.11-slim-bookworm@sha256:<digest>.
ARG BASE_IMAGE=python:3.12.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/llm-autoscaler \
 && /opt/llm-autoscaler/bin/pip install "pip==25.1.1" "setuptools==80.9.0" "wheel==0.45.1"
COPY pyproject.toml README.md ./
COPY autoscaler ./autoscaler
COPY adapters ./adapters
COPY policies ./policies
RUN /opt/llm-autoscaler/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/llm-autoscaler/bin/pip install /wheels/*.whl \
 && /opt/llm-autoscaler/bin/pip uninstall -y pip setuptools wheel \
 && /opt/llm-autoscaler/bin/llm-autoscaler --help >/dev/null

FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="llm-autoscaler" \
      org.opencontainers.image.description="Autoscaler and external metrics API for vLLM behind KServe" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/llm-autoscaler/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin nonroot
COPY --from=build /opt/llm-autoscaler /opt/llm-autoscaler
USER 65532:65532
# 8080: /metrics, /healthz, /readyz; 6443: external.metrics.k8s.io (HTTPS)
EXPOSE 8080 6443
ENTRYPOINT ["llm-autoscaler"]
CMD ["run"]
