"""Ai:oS settings: one file, driven by environment variables.

Production differs from development only through the environment (README, "Configuration").
Secrets may also come from `<NAME>_FILE` (a path to a file holding the value).
Reference: https://docs.djangoproject.com/en/5.2/ref/settings/
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from aios_core import embedded
from aios_core.logging import install_record_factory

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; real environment variables win

VAR_DIR = Path(env.str("AIOS_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)
# Prometheus multiprocess mode: must be set before prometheus_client is first imported.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus"))
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)


def _secret(name: str, default: str | None = None) -> str | None:
    """`NAME`, else the contents of the file named by `NAME_FILE`, else `default`."""
    if name in os.environ:
        return os.environ[name]
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return default


# --- Core -----------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
# Plain HTTP on a trusted host (make up, tests): relaxes only the HTTPS-only cookie, redirect
# and HSTS settings below. Never set it behind a real domain.
LOCAL_HTTP = DEBUG or env.bool("AIOS_LOCAL_HTTP", default=False)


def _secret_key() -> str:
    key = _secret("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required when DEBUG is off.")
    keyfile = VAR_DIR / "secret_key"
    if not keyfile.exists():
        keyfile.write_text(secrets.token_urlsafe(50))
        keyfile.chmod(0o600)
    return keyfile.read_text().strip()


SECRET_KEY = _secret_key()
# Only development mode has a default: AIOS_LOCAL_HTTP relaxes the HTTPS settings, nothing else.
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
PORT = env.int("PORT", default=8000)

INSTALLED_APPS = [
    "daphne",  # only for `runserver`; `make up` serves through uvicorn
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "django_celery_beat",
    "ninja",
    # ours, bottom layer first (docs/architecture.md)
    "observability",
    "routing",
    "agents",
    "evaluation",
    "aios_site",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "aios_site.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "aios_site.middleware.ApiTokenMiddleware",
    "aios_site.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "aios_site.urls"
WSGI_APPLICATION = "aios_site.wsgi.application"
ASGI_APPLICATION = "aios_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "aios_site.context_processors.navigation",
                "routing.context_processors.simulation",
            ],
        },
    },
]

# --- Database: Postgres only (https://docs.djangoproject.com/en/5.2/ref/databases/#postgresql-notes)
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
    DATABASE_EMBEDDED = False
else:
    DATABASES = {"default": env.db_url_config(embedded.postgres_url(VAR_DIR / "pg"))}
    DATABASE_EMBEDDED = True
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...).")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if env.str("AIOS_TEST_DB_NAME", default=""):  # set per run by tests/plugin_services.py
    DATABASES["default"]["TEST"] = {"NAME": env.str("AIOS_TEST_DB_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, channel layer and (by default) Celery broker --------------------------------
if env.str("REDIS_URL", default=""):
    REDIS_URL = env.str("REDIS_URL")
    REDIS_EMBEDDED = False
else:
    REDIS_URL = embedded.redis_url(VAR_DIR / "redis")
    REDIS_EMBEDDED = True

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("AIOS_CACHE_PREFIX", default="aios"),
        "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
    }
}

# https://channels.readthedocs.io/en/stable/topics/channel_layers.html
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 reads with a 5 s socket timeout by default, exactly channels-redis's
            # 5 s BZPOPMIN: under load the client gave up first and the consumer's receive loop
            # died with TimeoutError, so a live page went deaf. Read longer than the pop blocks.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}],
            "prefix": env.str("AIOS_CHANNELS_PREFIX", default="aios"),
            "capacity": 1000,
            "expiry": 30,
        },
    }
}

# --- Celery (https://docs.celeryq.dev/en/stable/userguide/configuration.html) ------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=embedded.celery_broker_url(REDIS_URL))
CELERY_RESULT_BACKEND = embedded.celery_broker_url(REDIS_URL)
CELERY_TASK_IGNORE_RESULT = True  # tasks record their outcome in Postgres; opt in per task
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True  # a message is acked after the task ran, not when received
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # a killed worker's message goes back to the queue
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("AIOS_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("AIOS_TASK_TIME_LIMIT", default=360)
# Redis redelivers an unacked message only after the visibility timeout: keep it longer than
# the longest task (the hard limit), or a slow task would run twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT * 2}
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_DEFAULT_QUEUE = env.str("AIOS_CELERY_QUEUE", default="aios")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Periodic tasks (beat). Keep every entry here, so one place lists what runs when.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "observability-retention": {"task": "observability.retention", "schedule": 3600.0},
    "routing-retention": {"task": "routing.retention", "schedule": 3600.0},
}

# --- Auth ------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"
AIOS_ADMIN_PASSWORD = _secret("AIOS_ADMIN_PASSWORD")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="aios@localhost")

# --- Security (https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/) ------------
SESSION_COOKIE_SECURE = not LOCAL_HTTP
CSRF_COOKIE_SECURE = not LOCAL_HTTP
SECURE_SSL_REDIRECT = not LOCAL_HTTP and env.bool("AIOS_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = 0 if LOCAL_HTTP else env.int("AIOS_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not LOCAL_HTTP
SECURE_HSTS_PRELOAD = not LOCAL_HTTP
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]  # probes speak plain HTTP
if env.bool("AIOS_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("AIOS_SESSION_AGE", default=12 * 3600)
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

# --- I18N / time ----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files (https://whitenoise.readthedocs.io/) -----------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "aios_site.staticfinders.PlotlyFinder",  # vendor/plotly.min.js from the pinned plotly package
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Logging: JSON lines on stdout -------------------------------------------------------------
install_record_factory()
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "aios_core.logging.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},  # our access log line replaces its warnings
        "django.server": {"level": "WARNING"},
        "pgserver": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},  # one INFO line per provider call otherwise
        "httpcore": {"level": "WARNING"},
    },
}

# --- Ai:oS --------------------------------------------------------------------------------
AIOS_PUBLIC_URL = env.str("AIOS_PUBLIC_URL", default=f"http://127.0.0.1:{PORT}")

# --- Observability ---------------------------------------------------------------------------
AIOS_CAPTURE_CONTENT = env.bool("AIOS_CAPTURE_CONTENT", default=True)  # prompts/responses on spans
AIOS_CONTENT_MAX_CHARS = env.int("AIOS_CONTENT_MAX_CHARS", default=8000)
AIOS_CONTENT_REDACTOR = env.str("AIOS_CONTENT_REDACTOR", default="aios_core.logging.redact")
AIOS_SPAN_BUFFER_MAX = env.int("AIOS_SPAN_BUFFER_MAX", default=200_000)  # spans held while the DB is away
AIOS_SPAN_FLUSH_INTERVAL_S = env.float("AIOS_SPAN_FLUSH_INTERVAL_S", default=0.5)
AIOS_SPAN_BATCH = env.int("AIOS_SPAN_BATCH", default=5000)
AIOS_SPAN_RETENTION_DAYS = env.int("AIOS_SPAN_RETENTION_DAYS", default=30)
AIOS_METRICS_TOKEN = _secret("AIOS_METRICS_TOKEN")  # /metrics answers only with this bearer token

# --- Agents: the action runtime (agents/runtime; README "Configuration") -----------------------
# Which executor applies host changes: "sandbox" (default: a scratch directory under var/, the
# firewall simulated) or "host" (the machine the worker runs on; deliberate, production only).
AIOS_EXECUTOR = env.str("AIOS_EXECUTOR", default="sandbox")
if AIOS_EXECUTOR not in ("sandbox", "host"):
    raise ImproperlyConfigured("AIOS_EXECUTOR must be 'sandbox' or 'host'.")
AIOS_SANDBOX_DIR = Path(env.str("AIOS_SANDBOX_DIR", default=str(VAR_DIR / "sandbox")))
AIOS_FORENSIC_MODE = env.bool("AIOS_FORENSIC_MODE", default=False)  # every run read-only, installation-wide
AIOS_RUN_LEASE_S = env.float("AIOS_RUN_LEASE_S", default=30.0)  # a running run's lease, renewed every third
AIOS_RUN_REDISPATCH_S = env.float("AIOS_RUN_REDISPATCH_S", default=30.0)  # re-send a still-queued run after
AIOS_RUN_MAX_CRASHES = env.int("AIOS_RUN_MAX_CRASHES", default=3)  # lost attempts before dead_letter
AIOS_RUN_MAX_ETA_S = env.float("AIOS_RUN_MAX_ETA_S", default=60.0)  # longer retry waits wait in the DB
AIOS_RUN_BACKOFF_SCALE = env.float("AIOS_RUN_BACKOFF_SCALE", default=1.0)  # tests: 0.001
AIOS_RUN_CONCURRENCY_WAIT_S = env.float("AIOS_RUN_CONCURRENCY_WAIT_S", default=2.0)
# Coalesced wake-ups (agents/runtime/doorbell.py): new runs ring one doorbell; a drain task claims
# them in order. Off: one broker message per run.
AIOS_RUN_COALESCE_WAKEUPS = env.bool("AIOS_RUN_COALESCE_WAKEUPS", default=True)
AIOS_RUN_DRAIN_S = env.float("AIOS_RUN_DRAIN_S", default=10.0)  # a drain stops claiming after this, rings again
AIOS_RUN_DRAIN_MAX_TIMEOUT_S = env.float("AIOS_RUN_DRAIN_MAX_TIMEOUT_S", default=60.0)  # longer: own message
AIOS_RUN_DOORBELL_TTL_S = env.int("AIOS_RUN_DOORBELL_TTL_S", default=5)  # a lost drain message silences no longer
# A drain that finds nothing waits this long for more before it lets the doorbell ring a new message.
AIOS_RUN_DRAIN_LINGER_S = env.float("AIOS_RUN_DRAIN_LINGER_S", default=0.05)
AIOS_RUN_TIME_LIMIT_MARGIN_S = env.float("AIOS_RUN_TIME_LIMIT_MARGIN_S", default=5.0)  # run timeout → Celery limits
AIOS_RUN_LIVE_EVENTS = env.bool("AIOS_RUN_LIVE_EVENTS", default=True)  # websocket status updates
AIOS_RUN_LIVE_FLUSH_S = env.float("AIOS_RUN_LIVE_FLUSH_S", default=0.1)  # coalescing interval of those
AIOS_RELAY_INTERVAL_S = env.float("AIOS_RELAY_INTERVAL_S", default=15.0)
AIOS_SWEEP_INTERVAL_S = env.float("AIOS_SWEEP_INTERVAL_S", default=15.0)
AIOS_INTEGRITY_PATHS = env.list(
    "AIOS_INTEGRITY_PATHS",
    default=[str(BASE_DIR / "aios_site" / "settings.py"), str(BASE_DIR / "manage.py"), "/etc/passwd"],
)
AIOS_SECURITY_TOOLS = env.list(
    "AIOS_SECURITY_TOOLS",
    default=["openssl", "nft", "iptables", "ufw", "fail2ban-client", "clamscan", "aide", "auditctl", "gpg", "ssh"],
)
CELERY_BEAT_SCHEDULE["agents-relay"] = {"task": "agents.relay", "schedule": AIOS_RELAY_INTERVAL_S}
CELERY_BEAT_SCHEDULE["agents-sweep-leases"] = {"task": "agents.sweep_leases", "schedule": AIOS_SWEEP_INTERVAL_S}

# --- Routing ------------------------------------------------------------------------------
AIOS_ROUTER_MIN_CONFIDENCE = env.float("AIOS_ROUTER_MIN_CONFIDENCE", default=0.3)  # else heuristics decide
AIOS_ENCRYPTION_KEY = _secret("AIOS_ENCRYPTION_KEY")  # encrypts admin-entered provider keys (default: SECRET_KEY)
AIOS_DECISION_RETENTION_DAYS = env.int("AIOS_DECISION_RETENTION_DAYS", default=30)
AIOS_GATEWAY_RETRIES = env.int("AIOS_GATEWAY_RETRIES", default=2)  # attempts per model before falling back
AIOS_CONFIG_RECHECK_S = env.float("AIOS_CONFIG_RECHECK_S", default=5.0)  # how soon admin edits reach every process
AIOS_CACHE_SWEEP_INTERVAL_S = env.float("AIOS_CACHE_SWEEP_INTERVAL_S", default=300.0)  # expired cache rows deleted
CELERY_BEAT_SCHEDULE["routing-cache-sweep"] = {"task": "routing.cache_sweep", "schedule": AIOS_CACHE_SWEEP_INTERVAL_S}
# Celery's Django fixup closes the database connection before and after *every* task unless
# CELERY_DB_REUSE_MAX is set (celery/fixups/django.py): a new Postgres connection per task costs
# the action runtime ~4 ms of its ~7 ms. With AIOS_CELERY_DB_REUSE_MAX=N (and CONN_MAX_AGE > 0),
# connections are reused; agents.execute_run still drops unusable or expired ones first
# (close_old_connections). Default 0: Celery's behaviour, unchanged for other apps' tasks.
CELERY_DB_REUSE_MAX = env.int("AIOS_CELERY_DB_REUSE_MAX", default=0) or None

# --- Evaluation ---------------------------------------------------------------------------
AIOS_EVAL_BATCH_SIZE = env.int("AIOS_EVAL_BATCH_SIZE", default=200)  # items per eval-run Celery task
AIOS_EVAL_CONCURRENCY = env.int("AIOS_EVAL_CONCURRENCY", default=8)  # items in flight within a batch
AIOS_EVAL_PROGRESS_INTERVAL_S = env.float("AIOS_EVAL_PROGRESS_INTERVAL_S", default=0.5)  # live progress, coalesced
AIOS_EVAL_UPLOAD_MAX_ITEMS = env.int("AIOS_EVAL_UPLOAD_MAX_ITEMS", default=50_000)
AIOS_EVAL_UPLOAD_MAX_ERRORS = env.int("AIOS_EVAL_UPLOAD_MAX_ERRORS", default=50)  # per-line errors shown
AIOS_EVAL_CONTINUOUS_INTERVAL_S = env.float("AIOS_EVAL_CONTINUOUS_INTERVAL_S", default=60.0)  # sampling interval
CELERY_BEAT_SCHEDULE["evaluation-continuous"] = {
    "task": "evaluation.continuous_tick",
    "schedule": AIOS_EVAL_CONTINUOUS_INTERVAL_S,
}
AIOS_AB_COLLECT_INTERVAL_S = env.float("AIOS_AB_COLLECT_INTERVAL_S", default=30.0)  # live A/B observations
CELERY_BEAT_SCHEDULE["evaluation-abtest-collect"] = {
    "task": "evaluation.abtest_collect_tick",
    "schedule": AIOS_AB_COLLECT_INTERVAL_S,
}

# --- Agents: human checkpoints (issue 6) -----------------------------------------------------
AIOS_APPROVAL_WEBHOOK_URL = env.str("AIOS_APPROVAL_WEBHOOK_URL", default="")  # Slack-compatible; empty: off
CELERY_BEAT_SCHEDULE["agents-approvals-expire"] = {"task": "agents.approvals_expire", "schedule": 30.0}
# previews and webhooks a broker outage left unqueued (the outbox relay of approvals)
CELERY_BEAT_SCHEDULE["agents-approvals-relay"] = {"task": "agents.approvals_relay", "schedule": 60.0}
