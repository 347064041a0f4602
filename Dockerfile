# Ai:oS control plane image: one image, three roles (web, worker, beat) chosen by command.
# Build:  docker build -t aios .
# Run:    docker run -e DATABASE_URL=... -e REDIS_URL=... -e SECRET_KEY=... -e ALLOWED_HOSTS=... -p 8000:8000 aios

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt constraints.txt ./
# torch: the CPU build (the default wheel on PyPI pulls gigabytes of CUDA libraries).
RUN python -m venv /venv \
 && /venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && /venv/bin/pip install -r requirements.txt -c constraints.txt

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=1 \
    DJANGO_SETTINGS_MODULE=aios_site.settings AIOS_VAR_DIR=/app/var PORT=8000
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 curl && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 aios
COPY --from=build /venv /venv
WORKDIR /app
COPY --chown=aios:aios . .
# Static files are collected at build time with a throwaway key; the real one comes at run time.
RUN SECRET_KEY=build-only DEBUG=0 ALLOWED_HOSTS=x DATABASE_URL=postgres://build@localhost/none REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput -v0 && mkdir -p var && chown -R aios:aios var staticfiles
USER aios
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 CMD curl -fsS http://127.0.0.1:${PORT}/healthz || exit 1
# web (default). Worker: celery -A aios_site worker; beat: celery -A aios_site beat (see docker-compose.yml).
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py aios_seed && exec python -m aios_site.serve --host 0.0.0.0 --port ${PORT} --workers ${WEB_CONCURRENCY:-2}"]
