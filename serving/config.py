"""The serving app's settings, read once at start (`ServingConfig.from_settings`).

Plain values: the fault tests build one from the environment without Django.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from compliance.geography import GDPR_COUNTRIES
from serving.ivt.judge import IvtRules


@dataclass(frozen=True, slots=True)
class ServingConfig:
    redis_url: str
    key_prefix: str
    signing_key: str
    public_url: str
    token_ttl: int = 3600
    refresh_interval: float = 1.0
    gvl_vendor_id: int = 0
    currency: str = "USD"
    fx: Mapping[str, Decimal] = field(default_factory=lambda: {"USD": Decimal(1)})
    rate_limit: int = 0
    buyer_timeout_ms: int = 120
    # The fleet-wide circuit breaker (`serving.limits.fleet`): opens for every process when
    # this share of the fleet's calls to a buyer failed over the window, given enough calls.
    buyer_breaker_error_rate: float = 0.5
    buyer_breaker_min_calls: int = 20
    buyer_breaker_window: int = 10
    buyer_breaker_cooldown: float = 5.0
    body_timeout: float = 5.0
    redis_timeout: float = 1.0
    geoip_path: str | None = None
    country_header: str | None = None
    region_header: str | None = None
    pseudonym_secret: bytes = b"test"
    pseudonym_rotation_seconds: int = 30 * 86400
    # Networks the server may fetch from although they are not public (serving.netguard).
    fetch_allowed_networks: tuple[str, ...] = ()
    # Countries where a request without regs.gdpr is treated as gdpr = 1.
    gdpr_countries: frozenset[str] = GDPR_COUNTRIES
    # How long a buyer's uid stays in the sync table after its last sync.
    sync_ttl: int = 30 * 86400
    # Share of requests written to the access log (logger serving.access, INFO).
    access_log_sample: float = 0.01
    # Candidates recorded per filled slot for the telemetry files (0: no features recorded).
    telemetry_candidates: int = 0
    stream_partitions: int = 1
    # Invalid traffic (`serving.ivt`): the thresholds until ad ops publish others, the
    # data-center list loaded at start, and the header our proxy puts the client's address in.
    ivt_rules: IvtRules = field(default_factory=IvtRules)
    ivt_datacenter_file: str | None = None
    client_ip_header: str = ""

    @classmethod
    def from_settings(cls) -> "ServingConfig":
        from django.conf import settings

        # The constants only: no database at start. The live table comes with each snapshot.
        from campaigns.fx.services import configured_fx_rates

        return cls(
            redis_url=settings.REDIS_URL,
            key_prefix=settings.REDIS_KEY_PREFIX,
            signing_key=settings.SERVING_SIGNING_KEY,
            public_url=settings.SERVING_PUBLIC_URL,
            token_ttl=settings.SERVING_TOKEN_TTL_SECONDS,
            gvl_vendor_id=settings.GVL_VENDOR_ID,
            currency=settings.SERVING_CURRENCY,
            fx=configured_fx_rates(),
            rate_limit=settings.SERVING_RATE_LIMIT,
            buyer_timeout_ms=settings.SERVING_BUYER_TIMEOUT_MS,
            buyer_breaker_error_rate=settings.SERVING_BUYER_BREAKER_ERROR_RATE,
            buyer_breaker_min_calls=settings.SERVING_BUYER_BREAKER_MIN_CALLS,
            buyer_breaker_window=settings.SERVING_BUYER_BREAKER_WINDOW_SECONDS,
            buyer_breaker_cooldown=settings.SERVING_BUYER_BREAKER_COOLDOWN_SECONDS,
            body_timeout=settings.SERVING_BODY_TIMEOUT_SECONDS,
            redis_timeout=settings.SERVING_REDIS_TIMEOUT_SECONDS,
            geoip_path=settings.GEOIP_PATH,
            country_header=settings.SERVING_COUNTRY_HEADER,
            region_header=settings.SERVING_REGION_HEADER,
            pseudonym_secret=str(settings.PSEUDONYM_SECRET).encode(),
            pseudonym_rotation_seconds=settings.PSEUDONYM_ROTATION_DAYS * 86400,
            fetch_allowed_networks=tuple(settings.SERVING_FETCH_ALLOWED_NETWORKS),
            telemetry_candidates=settings.TELEMETRY_CANDIDATES if settings.TELEMETRY_ENABLED else 0,
            stream_partitions=settings.EVENT_STREAM_PARTITIONS,
            gdpr_countries=frozenset(settings.GDPR_COUNTRIES),
            sync_ttl=settings.SYNC_TTL_SECONDS,
            access_log_sample=settings.SERVING_ACCESS_LOG_SAMPLE,
            ivt_rules=IvtRules.from_settings(),
            ivt_datacenter_file=settings.IVT_DATACENTER_FILE or None,
            client_ip_header=settings.SERVING_CLIENT_IP_HEADER.lower(),
        )
