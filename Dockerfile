# exportd: one image runs the API, the workers, or both (`exportd serve --role ...`).
# 3.11.15 or later: its email package refuses unsafely folded headers (CVE-2024-6923,
# CVE-2025-11468). exportd builds its mail headers safely on older ones too.
FROM python:3.11.15-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /src

# Dependencies first (read from pyproject.toml), so code changes do not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# A plain (not editable) install: the wheel carries the migrations as exportd.migrations.
COPY README.md ./
COPY exportd ./exportd
COPY migrations ./migrations
RUN pip install --no-deps . && rm -rf /src && useradd --system --uid 10001 exportd
WORKDIR /
USER exportd

EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
# Run `exportd migrate` once per deploy (a job or init container), then start replicas:
CMD ["exportd", "serve"]
