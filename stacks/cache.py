"""The prediction cache's settings as a replica's environment: one function for the local target, the kind
Deployment and the aws boot script (like stacks/threads.py).

The service reads these variables (bento/cache.py, whose names are used here so producer and consumer cannot drift
apart). Every variable is always set, also with the cache off: the aws boot script passes each one to `docker run`
by name, and an explicit "false" says the cache was considered and left off. Importing this module needs no
Pulumi engine.
"""

from __future__ import annotations

from bento.cache import ENV_ENABLED, ENV_MAX_ENTRIES, ENV_TTL_S
from stacks.config import CacheSettings

CACHE_VARIABLES = (ENV_ENABLED, ENV_MAX_ENTRIES, ENV_TTL_S)


def cache_env(cache: CacheSettings) -> dict[str, str]:
    """The environment variables that give a replica the stack's prediction cache (``modelops:cache``)."""
    return {
        ENV_ENABLED: "true" if cache.enabled else "false",
        ENV_MAX_ENTRIES: str(cache.max_entries),
        ENV_TTL_S: repr(cache.ttl_s),
    }
