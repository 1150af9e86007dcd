# sockhop's image: the hub (`sockhop serve`) on gunicorn gevent workers.
# Build:  docker build -t sockhop:0.1.0 .
# Run:    docker run --read-only --tmpfs /tmp -p 8080:8080 \
#           -e SOCKHOP_REDIS_URL=redis://redis:6379/0 sockhop:0.1.0 serve --config /etc/sockhop/config.json
# The Helm chart (helm/sockhop) and the plain manifests (k8s/) run it; see docs/deploy.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Builder: the project as a wheel, installed with its dependencies into a virtual
# environment that the final stage copies whole (same base image, so same paths and ABI).
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY workers ./workers
COPY session_store ./session_store
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/sockhop \
    && /opt/sockhop/bin/pip install --no-cache-dir /wheels/sockhop-*.whl

# Final: no compilers, no pip cache, no sources; a numeric non-root user, so Kubernetes'
# runAsNonRoot can check it without a passwd lookup.
FROM ${PYTHON_IMAGE}
ARG UID=10001
RUN groupadd --system --gid "${UID}" sockhop \
    && useradd --system --uid "${UID}" --gid "${UID}" --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin sockhop \
    && install -d -o "${UID}" -g "${UID}" /tmp/metrics
COPY --from=build /opt/sockhop /opt/sockhop
# Read-only root filesystem: no .pyc writes, HOME and every scratch file under /tmp (an
# emptyDir in Kubernetes), prometheus-client's multiprocess files in /tmp/metrics (its own
# emptyDir). sockhop serve turns gunicorn's control socket off (it would go to ~/.gunicorn).
ENV PATH=/opt/sockhop/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics \
    SOCKHOP_BIND=0.0.0.0:8080
USER ${UID}:${UID}
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["sockhop"]
CMD ["serve", "--bind", "0.0.0.0:8080"]
