# exportd: one image runs the API, the workers, or both (`exportd serve --role ...`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir exportd && touch exportd/__init__.py && pip install . && pip uninstall -y exportd

COPY exportd ./exportd
COPY migrations ./migrations
# Editable, so exportd finds migrations/ beside the package.
RUN pip install --no-deps -e . && useradd --system --uid 10001 exportd
USER exportd

EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
# Run `exportd migrate` once per deploy (a job or init container), then start replicas:
CMD ["exportd", "serve"]
