# exportd: one image runs the API, the workers, or both (`exportd serve --role ...`).
# 3.11.15 or later: its email package refuses unsafely folded headers (CVE-2024-6923,
# CVE-2025-11468). exportd builds its mail headers safely on older ones too.
FROM python:3.11.15-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src

# Dependencies first, so code changes do not reinstall them: exactly the pinned, hashed set
# of requirements.lock (see docs/deploy.md to regenerate it), as wheels only (no compiler
# in a slim image, and no build step to vary between builds).
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements.lock

# A plain (not editable) install: the wheel carries the migrations as exportd.migrations.
# --no-deps: every dependency came from the lock above.
COPY pyproject.toml README.md ./
COPY exportd ./exportd
COPY migrations ./migrations
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf /src \
    && groupadd --system --gid 10001 exportd \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --no-create-home exportd
WORKDIR /
# Numeric, so an orchestrator can verify it is not root (Kubernetes runAsNonRoot).
USER 10001:10001

EXPOSE 8080
# Follows the configured port: EXPORTD_PORT at check time (empty or unset: 8080, as in
# exportd.config). Set the port through EXPORTD_PORT, not `serve --port`, or this misses it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % (os.environ.get('EXPORTD_PORT') or '8080'), timeout=2)"]
# Run `exportd migrate` once per deploy (a job or init container), then start replicas:
CMD ["exportd", "serve"]
