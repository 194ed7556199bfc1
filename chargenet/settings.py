"""Django settings, all from the environment (12-factor).

Development defaults are safe to run on a laptop; ``CHARGENET_ENV`` is one of development,
test, production (anything else stops the process). With ``production`` a missing or weak
``SECRET_KEY`` or a missing ``ALLOWED_HOSTS`` stops the process instead of falling back, and
HTTPS (redirect, HSTS, secure cookies) and the Content-Security-Policy are on.
"""

import os
from decimal import ROUND_DOWN
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


# Only these: a typo ("prod", "Production ") must not quietly run with DEBUG and the dev key.
ENVIRONMENTS = ("development", "test", "production")
ENVIRONMENT = env("CHARGENET_ENV", "development")
if ENVIRONMENT not in ENVIRONMENTS:
    raise ImproperlyConfigured(
        f"CHARGENET_ENV must be one of {', '.join(ENVIRONMENTS)}; got {ENVIRONMENT!r}"
    )
PRODUCTION = ENVIRONMENT == "production"
DEBUG = env_bool("DEBUG", not PRODUCTION)

SECRET_KEY = (env("SECRET_KEY") or "").strip()
if PRODUCTION:
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set when CHARGENET_ENV=production")
    # Django's own bar (security.W009): 50 characters, 5 of them different.
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured(
            "SECRET_KEY is too weak for CHARGENET_ENV=production: use at least 50 random "
            "characters (python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
elif not SECRET_KEY:
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production"

_hosts = env("ALLOWED_HOSTS")
if not _hosts and PRODUCTION:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when CHARGENET_ENV=production")
ALLOWED_HOSTS = [h.strip() for h in (_hosts or "localhost,127.0.0.1,[::1]").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in (env("CSRF_TRUSTED_ORIGINS") or "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, not a CDN
    "chargenet",
    "orgs",
    "stations",
    "billing",
    "faults",
    "reports",
    "protocol",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "chargenet.csp.ContentSecurityPolicyMiddleware",
    # Serves the admin's static files from gunicorn in production (no separate web server).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chargenet.urls"
WSGI_APPLICATION = "chargenet.wsgi.application"
ASGI_APPLICATION = "chargenet.asgi.application"

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
                "chargenet.csp.csp_nonce",
            ],
        },
    },
]

# One engine everywhere: PostgreSQL. `python -m chargenet.embedded` resolves the URL for
# make run / make test; without it we expect the machine's server.
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/chargenet"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT", 5)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "orgs.Staff"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS: list = []  # each app ships its own locale/ with the compiled .mo committed
TIME_ZONE = env("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# In development the app directories are served directly: no collectstatic needed.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))

# Redis: cache, Celery broker, gateway command routing.
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")


def _celery_url(url: str) -> str:
    # kombu spells a unix-socket Redis as redis+socket:///path
    if url.startswith("unix://"):
        path, _, query = url[len("unix://") :].partition("?")
        return f"redis+socket://{path}" + (
            f"?virtual_host={query.split('db=')[-1]}" if query else ""
        )
    return url


CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "chargenet"),
    }
}

CELERY_BROKER_URL = _celery_url(REDIS_URL)
CELERY_RESULT_BACKEND = None
# A task is acknowledged when it is done, and one whose worker died is put back, so a
# killed worker loses nothing. The Redis broker redelivers an unacknowledged task after the
# visibility timeout (kombu's default: one hour): ten minutes, longer than any task may run
# (CELERY_TASK_TIME_LIMIT and the per-task limits, at most 300 s) and than any retry
# countdown (retry_backoff_max 120 s), so a running or waiting task is never delivered twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
# Periodic jobs wait at most this long for a row lock, then fail (and run again at their
# next tick) instead of sitting on the rows they already locked (chargenet.celery).
CELERY_JOB_LOCK_TIMEOUT_MS = env_int("CELERY_JOB_LOCK_TIMEOUT_MS", 5000)
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Every periodic job, in one place. Each task is idempotent and safe to run concurrently.
# A frequent job's run that no worker picked up before the next tick expires: a backlog of
# identical runs is not worth working through after an outage.
CELERY_BEAT_SCHEDULE: dict = {
    # Stopped sessions whose per-session task was lost (or not yet run) settle in batches.
    "settle-pending-sessions": {
        "task": "billing.sessions_settle_pending",
        "schedule": 10.0,
        "options": {"expires": 10.0},
    },
    "piles-sweep-offline": {
        "task": "protocol.piles_sweep_offline",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    "lost-bills-sweep": {
        "task": "faults.lost_bills_sweep",
        "schedule": 300.0,
        "options": {"expires": 300.0},
    },
    "notifications-retry": {
        "task": "faults.notifications_send_pending",
        "schedule": 300.0,
        "options": {"expires": 300.0},
    },
    # Domain events a crash or a lost task left undelivered (chargenet.events).
    "events-deliver-pending": {
        "task": "chargenet.events_deliver_pending",
        "schedule": 30.0,
        "options": {"expires": 30.0},
    },
    "events-prune": {"task": "chargenet.events_prune", "schedule": crontab(hour=4, minute=10)},
    "journal-prune": {"task": "protocol.journal_prune", "schedule": crontab(hour=3, minute=10)},
    "heartbeat-history-prune": {
        "task": "protocol.heartbeat_history_prune",
        "schedule": crontab(hour=3, minute=40),
    },
    # Piles' local authorisation lists brought up to date with members and cards
    # (protocol.sync; also at every boot), every OCPP_SYNC_SECONDS.
    "piles-sync": {
        "task": "protocol.piles_sync",
        "schedule": env_float("OCPP_SYNC_SECONDS", 300.0),
        "options": {"expires": env_float("OCPP_SYNC_SECONDS", 300.0)},
    },
    "reservations-expire": {
        "task": "protocol.reservations_expire",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "chargenet.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "chargenet API",
    "DESCRIPTION": "Driver (WeChat) and partner APIs of the chargenet charging platform.",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Delivered domain events are kept this long (chargenet.events).
EVENTS_RETENTION_DAYS = env_int("EVENTS_RETENTION_DAYS", 30)

# Money: the rounding mode used to bring a bill total to the fen (DOMAIN.md: truncation).
CHARGENET_ROUNDING = ROUND_DOWN

# OCPP gateway
GATEWAY_HOST = env("GATEWAY_HOST", "127.0.0.1")
GATEWAY_PORT = env_int("GATEWAY_PORT", 9000)
GATEWAY_HEARTBEAT_INTERVAL = env_int("GATEWAY_HEARTBEAT_INTERVAL", 60)
GATEWAY_OFFLINE_AFTER_INTERVALS = env_int("GATEWAY_OFFLINE_AFTER_INTERVALS", 3)
GATEWAY_JOURNAL_RETENTION_DAYS = env_int("GATEWAY_JOURNAL_RETENTION_DAYS", 180)
GATEWAY_HEARTBEAT_HISTORY_DAYS = env_int("GATEWAY_HEARTBEAT_HISTORY_DAYS", 30)
# One heartbeat history sample per pile at most this often.
GATEWAY_HEARTBEAT_SAMPLE_SECONDS = env_int("GATEWAY_HEARTBEAT_SAMPLE_SECONDS", 300)
# Piles of one station going silent in the same minute, at least this many: one outage.
GATEWAY_OUTAGE_MIN_PILES = env_int("GATEWAY_OUTAGE_MIN_PILES", 2)
# Unpublished piles are Accepted at boot; off: Pending (commissioning).
GATEWAY_ACCEPT_UNPUBLISHED = env_bool("GATEWAY_ACCEPT_UNPUBLISHED", True)
# How often a node writes last-seen times (one UPDATE for all its piles).
GATEWAY_SEEN_FLUSH_SECONDS = env_float("GATEWAY_SEEN_FLUSH_SECONDS", 5.0)
# How often a node runs the offline sweep (0 = leave it to Celery beat).
GATEWAY_SWEEP_SECONDS = env_float("GATEWAY_SWEEP_SECONDS", 30.0)
# Frames longer than this get a FormationViolation; 4x this closes the socket.
GATEWAY_MAX_FRAME_BYTES = env_int("GATEWAY_MAX_FRAME_BYTES", 65536)
# Frames per connection and minute (every frame counts: calls, answers, malformed ones); a
# pile sending more is flooding and is disconnected (1008).
GATEWAY_MAX_CALLS_PER_MINUTE = env_int("GATEWAY_MAX_CALLS_PER_MINUTE", 600)
# Frames the gateway does not process (answers to nothing it sent, the frame that trips the
# flood limit) are journaled as a prefix of this many characters.
GATEWAY_JOURNAL_PREFIX_CHARS = env_int("GATEWAY_JOURNAL_PREFIX_CHARS", 512)
# Refused handshakes journaled per pile code and per address in any minute; the rest are
# counted in the log.
GATEWAY_REFUSED_JOURNAL_PER_MINUTE = env_int("GATEWAY_REFUSED_JOURNAL_PER_MINUTE", 10)
GATEWAY_DB_THREADS = env_int("GATEWAY_DB_THREADS", 16)
GATEWAY_REDIS_PREFIX = env("GATEWAY_REDIS_PREFIX", "chargenet:gw:")
# sys.setswitchinterval for the gateway process (the event loop shares the GIL with the
# database threads).
GATEWAY_SWITCH_INTERVAL = env_float("GATEWAY_SWITCH_INTERVAL", 0.0005)
# Pile passwords (HTTP Basic) are machine secrets, checked as HMAC-SHA256 under this key
# (a pepper kept out of the database). Empty: derived from SECRET_KEY. Changing it
# invalidates every pile password stored in the new form.
PILE_CREDENTIAL_KEY = env("PILE_CREDENTIAL_KEY", "")
# Handshake failures allowed per peer address and per pile code within the window; past
# either, the gateway answers 429 without looking the pile up.
GATEWAY_LOGIN_FAILURES_PER_PEER = env_int("GATEWAY_LOGIN_FAILURES_PER_PEER", 10)
GATEWAY_LOGIN_FAILURES_PER_CODE = env_int("GATEWAY_LOGIN_FAILURES_PER_CODE", 30)
GATEWAY_LOGIN_FAILURE_WINDOW = env_int("GATEWAY_LOGIN_FAILURE_WINDOW", 300)
# Reverse proxies (TLS terminators) whose X-Forwarded-For names the pile's address.
GATEWAY_TRUSTED_PROXIES = [p for p in env("GATEWAY_TRUSTED_PROXIES", "").split(",") if p]

# OCPP 1.6 feature profiles (issue 15). DataTransfer vendor ids the platform knows (comma
# separated); another vendorId is answered UnknownVendorId. Empty: any vendor (VIN by
# DataTransfer comes with each pile maker's own id).
OCPP_DATA_TRANSFER_VENDOR_IDS = [
    v for v in env("OCPP_DATA_TRANSFER_VENDOR_IDS", "").split(",") if v
]

# Driver notifications (faults.notifications): "log" writes them to the log, "wechat" sends
# WeChat template messages with the official account's app id / secret and template ids.
FAULTS_NOTIFICATION_SENDER = env("FAULTS_NOTIFICATION_SENDER", "log")
if FAULTS_NOTIFICATION_SENDER not in {"log", "wechat"}:
    raise ImproperlyConfigured('FAULTS_NOTIFICATION_SENDER must be "log" or "wechat"')
WECHAT_APP_ID = env("WECHAT_APP_ID", "")
WECHAT_APP_SECRET = env("WECHAT_APP_SECRET", "")
WECHAT_TEMPLATE_CHARGE_FINISHED = env("WECHAT_TEMPLATE_CHARGE_FINISHED", "")
WECHAT_TEMPLATE_BEING_CHECKED = env("WECHAT_TEMPLATE_BEING_CHECKED", "")
WECHAT_API_BASE = env("WECHAT_API_BASE", "https://api.weixin.qq.com")
if FAULTS_NOTIFICATION_SENDER == "wechat":
    for _name in (
        "WECHAT_APP_ID",
        "WECHAT_APP_SECRET",
        "WECHAT_TEMPLATE_CHARGE_FINISHED",
        "WECHAT_TEMPLATE_BEING_CHECKED",
    ):
        if not globals()[_name]:
            raise ImproperlyConfigured(
                f"{_name} must be set when FAULTS_NOTIFICATION_SENDER=wechat"
            )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Back-office sign-in throttle (chargenet.login): failures allowed per username and per
# client address before sign-in is locked for LOGIN_LOCK_MINUTES.
LOGIN_FAILURES_PER_USERNAME = env_int("LOGIN_FAILURES_PER_USERNAME", 5)
LOGIN_FAILURES_PER_ADDRESS = env_int("LOGIN_FAILURES_PER_ADDRESS", 20)
LOGIN_LOCK_MINUTES = env_int("LOGIN_LOCK_MINUTES", 15)
# Behind a proxy every client has the proxy's REMOTE_ADDR: name the header it sets instead.
LOGIN_CLIENT_ADDRESS_HEADER = env("LOGIN_CLIENT_ADDRESS_HEADER", "")

# Content-Security-Policy (chargenet.csp): sent in production, or when CSP_ENABLED is on.
CSP_ENABLED = env_bool("CSP_ENABLED", PRODUCTION)

if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
    # The header a TLS-terminating proxy sets ("" when Django itself faces the clients).
    _proxy_header = env("SECURE_PROXY_SSL_HEADER", "HTTP_X_FORWARDED_PROTO")
    SECURE_PROXY_SSL_HEADER = (_proxy_header, "https") if _proxy_header else None
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
