"""The serving app alone, configured from the environment, for a real granian in fault tests.

No Django: the test that starts it publishes the snapshot into the Redis it names.
"""

import os

from serving.app import ServingApp
from serving.config import ServingConfig

app = ServingApp(
    ServingConfig(
        redis_url=os.environ["FAULT_REDIS_URL"],
        key_prefix=os.environ.get("FAULT_KEY_PREFIX", "fault:"),
        signing_key=os.environ.get("FAULT_SIGNING_KEY", "fault-signing-key"),
        public_url=os.environ.get("FAULT_PUBLIC_URL", "http://127.0.0.1"),
        body_timeout=float(os.environ.get("FAULT_BODY_TIMEOUT", "5")),
        redis_timeout=float(os.environ.get("FAULT_REDIS_TIMEOUT", "1")),
        rate_limit=0,
    )
)
