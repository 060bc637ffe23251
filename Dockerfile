# psychvis web app (no torch: the builder runs elsewhere).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /srv/psychvis
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY docs ./docs
RUN pip install --no-cache-dir '.[web]' \
    && useradd --system --uid 10001 --home-dir /srv/psychvis psychvis \
    && mkdir -p /var/lib/psychvis/stimuli \
    && chown -R psychvis /var/lib/psychvis

USER psychvis
ENV PSYCHVIS_HOME=/var/lib/psychvis \
    PSYCHVIS_STATIC_DIR=/srv/psychvis/static \
    PSYCHVIS_TEMPLATES_DIR=/srv/psychvis/templates \
    PSYCHVIS_DOCS_DIR=/srv/psychvis/docs \
    PSYCHVIS_STIMULI_DIR=/var/lib/psychvis/stimuli
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["psychvis", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
