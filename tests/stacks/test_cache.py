"""The prediction cache's settings as a replica's environment: what every target passes is what the service reads."""

from __future__ import annotations

import pytest

from bento.cache import ENV_ENABLED, settings_from_env
from stacks.cache import CACHE_VARIABLES, cache_env
from stacks.config import CacheSettings, load_stack_config


@pytest.mark.parametrize("stack", ["local", "kind", "aws"])
def test_the_shipped_stacks_leave_the_cache_off(stack: str) -> None:
    assert load_stack_config(stack).cache.enabled is False


def test_every_variable_is_set_also_with_the_cache_off() -> None:
    env = cache_env(CacheSettings())
    assert set(env) == set(CACHE_VARIABLES) and env[ENV_ENABLED] == "false"
    assert settings_from_env(env).enabled is False


@pytest.mark.parametrize(
    "cache",
    [
        CacheSettings(enabled=True),
        CacheSettings(enabled=True, max_entries=1, ttl_s=0.25),
        CacheSettings(enabled=True, ttl_s=86_400),
    ],
)
def test_the_service_reads_back_exactly_the_stack_s_settings(cache: CacheSettings) -> None:
    read = settings_from_env(cache_env(cache))
    assert (read.enabled, read.max_entries, read.ttl_s) == (cache.enabled, cache.max_entries, cache.ttl_s)
