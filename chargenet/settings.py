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
    "interconnect",
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
    # The reports' rollups of the last days recounted from the bills (reports.tasks).
    "reports-rollups-rebuild-recent": {
        "task": "reports.rollups_rebuild_recent",
        "schedule": crontab(hour=2, minute=20),
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
    # Time-of-use caps of connected piles that differ from the tariff in force (a tariff
    # change that started since; a pile that missed a push): sent again.
    "time-of-use-refresh": {
        "task": "protocol.time_of_use_refresh",
        "schedule": 1800.0,
        "options": {"expires": 1800.0},
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
# Seconds a pile's opening handshake may take, our login included: in a 10,000-pile
# reconnect storm a handshake waits seconds for its turn, and websockets' 10 s closed
# 0.6 % of them (bench.gateway --open-loop), work done for nothing and piles retrying later.
GATEWAY_OPEN_TIMEOUT = env_float("GATEWAY_OPEN_TIMEOUT", 60.0)
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
# Group-commit batches running at once (the other threads serve `run_alone` work). Fewer
# and bigger batches share commits and contend less for the GIL: with 3 instead of 8 the
# closed loop of bench.gateway costs a fifth less CPU per message, gateway and database.
GATEWAY_DB_GROUPS = env_int("GATEWAY_DB_GROUPS", 3)
# Gateway processes prepare a statement once a connection has run it this many times
# (protocol.db.statements_prepared); 0 sends every statement whole, as web and workers do.
GATEWAY_DB_PREPARED = env_int("GATEWAY_DB_PREPARED", 2)
GATEWAY_REDIS_PREFIX = env("GATEWAY_REDIS_PREFIX", "chargenet:gw:")
# sys.setswitchinterval for the gateway process (the event loop shares the GIL with the
# database threads).
GATEWAY_SWITCH_INTERVAL = env_float("GATEWAY_SWITCH_INTERVAL", 0.0005)
# A gateway process collects its young garbage every this many container allocations
# (Python's default 700), after freezing what it loaded (protocol.gateway.collector);
# 0 keeps Python's thresholds.
GATEWAY_GC_THRESHOLD = env_int("GATEWAY_GC_THRESHOLD", 50_000)
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
# Messages about the driver's money: balance refunds (approved, rejected, refunded, failed)
# and invoices (issued, rejected).
WECHAT_TEMPLATE_REFUND = env("WECHAT_TEMPLATE_REFUND", "")
WECHAT_TEMPLATE_INVOICE = env("WECHAT_TEMPLATE_INVOICE", "")
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

# WeChat Pay API v3 (integrations.wechat.pay), direct merchant, JSAPI in the official
# account: merchant number, the merchant API key (PEM) and its certificate serial number,
# the APIv3 key, and the WeChat Pay platform public key with its id. Notifications reach
# WECHATPAY_NOTIFY_BASE (this site's public https address) + /api/v1/pay/wechat/notify.
WECHATPAY_MCHID = env("WECHATPAY_MCHID", "")
WECHATPAY_APPID = env("WECHATPAY_APPID", WECHAT_APP_ID)
WECHATPAY_PRIVATE_KEY = env("WECHATPAY_PRIVATE_KEY", "")
WECHATPAY_CERT_SERIAL_NO = env("WECHATPAY_CERT_SERIAL_NO", "")
WECHATPAY_APIV3_KEY = env("WECHATPAY_APIV3_KEY", "")
WECHATPAY_PUBLIC_KEY = env("WECHATPAY_PUBLIC_KEY", "")
WECHATPAY_PUBLIC_KEY_ID = env("WECHATPAY_PUBLIC_KEY_ID", "")
WECHATPAY_API_BASE = env("WECHATPAY_API_BASE", "https://api.mch.weixin.qq.com")
WECHATPAY_NOTIFY_BASE = env("WECHATPAY_NOTIFY_BASE", "http://127.0.0.1:8000")
# Development only (`make run`): the local fake WeChat Pay the wallet page pays through.
WECHATPAY_FAKE_URL = env("WECHATPAY_FAKE_URL", "") if not PRODUCTION else ""
# Recharges: the amounts a driver may pay in, how long an order may be paid, and after how
# many minutes without a notification the beat job asks WeChat about it.
RECHARGE_MIN_YUAN = env("RECHARGE_MIN_YUAN", "1.00")
RECHARGE_MAX_YUAN = env("RECHARGE_MAX_YUAN", "5000.00")
RECHARGE_EXPIRE_MINUTES = env_int("RECHARGE_EXPIRE_MINUTES", 30)
RECHARGE_QUERY_AFTER_MINUTES = env_int("RECHARGE_QUERY_AFTER_MINUTES", 5)
# A driver's invoice download link works this many seconds.
INVOICE_LINK_SECONDS = env_int("INVOICE_LINK_SECONDS", 600)
CELERY_BEAT_SCHEDULE.update(
    {
        # Recharges still pending after RECHARGE_QUERY_AFTER_MINUTES: ask WeChat, credit
        # or close them (the notification may never come).
        "recharges-reconcile": {
            "task": "billing.recharges_reconcile_pending",
            "schedule": 60.0,
            "options": {"expires": 60.0},
        },
        # Approved balance refunds not yet accepted by WeChat, or still processing there.
        "refunds-reconcile": {
            "task": "billing.refunds_reconcile_pending",
            "schedule": 300.0,
            "options": {"expires": 300.0},
        },
    }
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

# Time-partitioned tables (chargenet/partitions.py): the frame journal by day, meter
# samples by week; beat creates partitions ahead, retention drops whole partitions.
METER_SAMPLE_RETENTION_DAYS = env_int("METER_SAMPLE_RETENTION_DAYS", 1095)
CELERY_BEAT_SCHEDULE["partitions-ahead"] = {
    "task": "protocol.partitions_ahead",
    "schedule": crontab(minute=20),
}
CELERY_BEAT_SCHEDULE["meter-samples-prune"] = {
    "task": "billing.meter_samples_prune",
    "schedule": crontab(hour=3, minute=25),
}
# The queue tasks go to and workers read (a test's own processes keep theirs apart).
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "celery")
# Exports (reports.exports): the machinery as an app of its own; files written by the
# worker live outside MEDIA_ROOT (never public) and download through an ownership check.
INSTALLED_APPS += ["reports.exports"]
EXPORTS_ROOT = Path(env("EXPORTS_ROOT", str(BASE_DIR / "var" / "exports")))
# Up to this many rows download at once (about a second of Excel writing); more become a
# Celery job ("My exports").
EXPORTS_INLINE_MAX_ROWS = env_int("EXPORTS_INLINE_MAX_ROWS", 2000)
# A running export whose progress stopped this long ago lost its worker: queued again.
EXPORTS_STALE_AFTER_S = env_int("EXPORTS_STALE_AFTER_S", 600)
EXPORTS_RETENTION_DAYS = env_int("EXPORTS_RETENTION_DAYS", 7)
CELERY_BEAT_SCHEDULE["exports-resume-stale"] = {
    "task": "reports.export_jobs_resume_stale",
    "schedule": 300.0,
    "options": {"expires": 300.0},
}
CELERY_BEAT_SCHEDULE["exports-prune"] = {
    "task": "reports.export_jobs_prune",
    "schedule": crontab(hour=4, minute=40),
}
# Driver API (/api/v1/, the driverapi package; issue 12). Every DRF view is for a logged-in
# driver unless it says otherwise: ``Authorization: Bearer <token>`` (orgs.authentication).
INSTALLED_APPS += ["driverapi"]
REST_FRAMEWORK |= {
    "DEFAULT_AUTHENTICATION_CLASSES": ["orgs.authentication.DriverTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["orgs.authentication.IsDriver"],
    "DEFAULT_PAGINATION_CLASS": "chargenet.api.Pagination",
    "DEFAULT_THROTTLE_CLASSES": [
        "chargenet.api.PrincipalRateThrottle",
        "chargenet.api.AddressRateThrottle",
    ],
}
SPECTACULAR_SETTINGS["COMPONENT_SPLIT_REQUEST"] = True
# Requests per authenticated principal and per client address ("" switches one off).
API_THROTTLE_USER = env("API_THROTTLE_USER", "120/min")
API_THROTTLE_IP = env("API_THROTTLE_IP", "600/min")
# How long a driver's API token (one WeChat login) stays valid.
DRIVER_TOKEN_DAYS = env_int("DRIVER_TOKEN_DAYS", 30)
# Driver login: the operator whose official account the H5 pages belong to (empty: the only
# operator), WeChat's OAuth page (a local fake in development), and phone binding by SMS.
DRIVER_OPERATOR_CODE = env("DRIVER_OPERATOR_CODE", "")
WECHAT_OAUTH_AUTHORIZE_URL = env(
    "WECHAT_OAUTH_AUTHORIZE_URL", "https://open.weixin.qq.com/connect/oauth2/authorize"
)
SMS_SENDER = env("SMS_SENDER", "log")
if SMS_SENDER not in {"log", "aliyun"}:
    raise ImproperlyConfigured('SMS_SENDER must be "log" or "aliyun"')
ALIYUN_SMS_ACCESS_KEY_ID = env("ALIYUN_SMS_ACCESS_KEY_ID", "")
ALIYUN_SMS_ACCESS_KEY_SECRET = env("ALIYUN_SMS_ACCESS_KEY_SECRET", "")
ALIYUN_SMS_SIGN_NAME = env("ALIYUN_SMS_SIGN_NAME", "")
ALIYUN_SMS_TEMPLATE_CODE = env("ALIYUN_SMS_TEMPLATE_CODE", "")
ALIYUN_SMS_ENDPOINT = env("ALIYUN_SMS_ENDPOINT", "https://dysmsapi.aliyuncs.com")
if SMS_SENDER == "aliyun":
    for _name in (
        "ALIYUN_SMS_ACCESS_KEY_ID",
        "ALIYUN_SMS_ACCESS_KEY_SECRET",
        "ALIYUN_SMS_SIGN_NAME",
        "ALIYUN_SMS_TEMPLATE_CODE",
    ):
        if not globals()[_name]:
            raise ImproperlyConfigured(f"{_name} must be set when SMS_SENDER=aliyun")
SMS_CODE_MINUTES = env_int("SMS_CODE_MINUTES", 5)
SMS_CODE_ATTEMPTS = env_int("SMS_CODE_ATTEMPTS", 5)
SMS_CODE_RESEND_SECONDS = env_int("SMS_CODE_RESEND_SECONDS", 60)
SMS_CODES_PER_DAY = env_int("SMS_CODES_PER_DAY", 10)
# Where WeChat's OAuth page sends the driver back to (the H5 login page).
DRIVER_H5_LOGIN_PATH = "/h5/login/"
# A driver's remote start needs the car plugged in first (the pile reports "Preparing");
# off for piles that wait for the plug after the start (the demo simulator does).
DRIVER_START_REQUIRES_PLUG = env_bool("DRIVER_START_REQUIRES_PLUG", True)
# Seconds the pile has to answer a driver's start (the gateway waits; the phone reads the
# answer later at /api/v1/starts/<id>/) or stop (the request waits).
DRIVER_COMMAND_TIMEOUT = env_float("DRIVER_COMMAND_TIMEOUT", 15.0)
# A driver's start nobody asked about gets its outcome recorded (driverapi.starts).
CELERY_BEAT_SCHEDULE["driver-starts-settle"] = {
    "task": "driverapi.starts_settle",
    "schedule": 60.0,
    "options": {"expires": 60.0},
}
# The drivers' H5 pages sort stations from here when the phone gives no position.
DRIVER_H5_DEFAULT_POSITION = env("DRIVER_H5_DEFAULT_POSITION", "22.517600,113.392600")
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {
    "SessionStateEnum": "billing.models.sessions.SessionState",
    "ConnectorDriverStateEnum": "stations.public.DriverState.CHOICES",
    "BillDriverStateEnum": "driverapi.charging.BILL_STATE_CHOICES",
}
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] = [
    "drf_spectacular.hooks.postprocess_schema_enums",
    "chargenet.api.error_responses_hook",
]
# Partner platforms over T/CEC 102 (interconnect/). Our OperatorID at the partners, the key
# that seals their secrets at rest (empty: derived from SECRET_KEY), how long a token we
# issue lives, and how far a request's TimeStamp may be from our clock.
INTERCONNECT_OPERATOR_ID = env("INTERCONNECT_OPERATOR_ID", "CHARGENET")
INTERCONNECT_SECRET_KEY = env("INTERCONNECT_SECRET_KEY", "")
INTERCONNECT_TOKEN_SECONDS = env_int("INTERCONNECT_TOKEN_SECONDS", 7200)
INTERCONNECT_CLOCK_SKEW_SECONDS = env_int("INTERCONNECT_CLOCK_SKEW_SECONDS", 300)
# The partner message log is kept this long (interconnect.messages_prune, nightly).
INTERCONNECT_MESSAGE_RETENTION_DAYS = env_int("INTERCONNECT_MESSAGE_RETENTION_DAYS", 180)
CELERY_BEAT_SCHEDULE |= {
    "interconnect-pushes": {
        "task": "interconnect.pushes_deliver_due",
        "schedule": 20.0,
        "options": {"expires": 20.0},
    },
    "interconnect-starts-dispatch": {
        "task": "interconnect.partner_orders_dispatch_due",
        "schedule": 30.0,
        "options": {"expires": 30.0},
    },
    "interconnect-charge-status": {
        "task": "interconnect.charge_status_enqueue",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    "interconnect-orders-check": {
        "task": "interconnect.orders_check",
        "schedule": 600.0,
        "options": {"expires": 600.0},
    },
    "interconnect-reconcile": {
        "task": "interconnect.reconciliations_enqueue",
        "schedule": crontab(hour=2, minute=30),
    },
    "interconnect-messages-prune": {
        "task": "interconnect.messages_prune",
        "schedule": crontab(hour=3, minute=50),
    },
}
