# Ai:oS control plane image: one image, four roles chosen by command (docker-compose.yml and
# k8s/ spell them out; aios_site/management/commands/up.py runs the same processes for `make up`):
#   web (the default CMD)  python -m aios_site.serve --host 0.0.0.0   (PORT, WEB_CONCURRENCY from the env)
#   worker                 celery -A aios_site worker --loglevel INFO --concurrency 2 --without-gossip --without-mingle
#   beat                   celery -A aios_site beat --loglevel INFO --enable-remote-control
#   migrate (once per release, before the others start)
#                          sh -c "python manage.py migrate --noinput && python manage.py aios_seed"
# Build:  docker build -t aios .
# Run:    docker run --rm -e DATABASE_URL=... -e REDIS_URL=... -e SECRET_KEY=... aios sh -c "python manage.py migrate --noinput && python manage.py aios_seed"
#         docker run -e DATABASE_URL=... -e REDIS_URL=... -e SECRET_KEY=... -e ALLOWED_HOSTS=aios.example.com,127.0.0.1 -p 8000:8000 aios
# (127.0.0.1 in ALLOWED_HOSTS for the HEALTHCHECK below, which sends that Host header.)

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt constraints.txt ./
# torch: the CPU build. PyPI's torch==2.13.0 for Linux x86_64 is the CUDA build and pulls
# gigabytes of nvidia-* wheels, so torch alone comes from PyTorch's CPU index (version
# 2.13.0+cpu, which `torch==2.13.0` in requirements.txt accepts: a local label is ignored when
# the pin has none). --no-deps: its dependencies are pinned in requirements.txt and come from
# PyPI in the second step, not unpinned from the PyTorch index. The last line fails the build
# if a CUDA build slipped in anyway.
RUN python -m venv /venv \
 && /venv/bin/pip install --no-deps --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && /venv/bin/pip install -r requirements.txt -c constraints.txt \
 && /venv/bin/python -c "import torch, sys; sys.exit(torch.version.cuda is not None)"

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=1 \
    DJANGO_SETTINGS_MODULE=aios_site.settings AIOS_VAR_DIR=/app/var PORT=8000 WEB_CONCURRENCY=2
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 curl && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 --user-group aios
COPY --from=build /venv /venv
WORKDIR /app
# The code stays owned by root: the app user can write only var/ (and, on Kubernetes, nothing
# but its emptyDir volumes: the root filesystem is mounted read-only there).
COPY . .
# Static files are collected at build time with a throwaway key; the real one comes at run time.
RUN SECRET_KEY=build-only DEBUG=0 ALLOWED_HOSTS=x DATABASE_URL=postgres://build@localhost/none REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput -v0 && mkdir -p var && chown -R 10001:10001 var
# Numeric, so Kubernetes' runAsNonRoot can verify it (it cannot resolve a user name).
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 CMD curl -fsS http://127.0.0.1:${PORT}/healthz || exit 1
CMD ["python", "-m", "aios_site.serve", "--host", "0.0.0.0"]
