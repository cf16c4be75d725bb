"""The stack's boot script as the driver reads and changes it: stacks/aws/fleet.py renders one shell-quoted
`readonly KEY=value` line per setting into stacks/aws/user_data.sh; new launch template versions change only some
of those lines."""

from __future__ import annotations

import re
import shlex

from modelops.errors import DeploymentError
from modelops.targets.outputs import BENTOML_OVERRIDES_ENV, with_workers
from stacks.threads import thread_env

# stacks/aws/fleet.py renders the boot script with one shell-quoted `readonly KEY=value` line per setting.
_ASSIGNMENT = re.compile(r"^readonly ([A-Z_][A-Z0-9_]*)=(.*)$", re.MULTILINE)


def boot_settings(script: str) -> dict[str, str]:
    """The settings of a boot script rendered by stacks/aws/fleet.py (IMAGE, BENTOML_CONFIG_OVERRIDES, ...)."""
    settings = {}
    for key, quoted in _ASSIGNMENT.findall(script):
        words = shlex.split(quoted)
        settings[key] = words[0] if words else ""
    return settings


def retarget_boot_script(script: str, image: str, bento: str, workers: int, vcpus: int | None = None) -> str:
    """The stack's boot script, running ``image`` with ``workers`` workers (and, given the instance's ``vcpus``,
    thread pools sized to each worker's share); every other setting and line stays as the stack rendered it
    (region, log group, drain timeout, the hardened `docker run`)."""
    settings = boot_settings(script)
    if "IMAGE" not in settings:
        raise DeploymentError(
            "the launch template's user data is not the stack's boot script (no `readonly IMAGE=` line from "
            "stacks/aws/user_data.sh): run `pulumi up -s aws` so the stack owns the launch template again"
        )
    changes = {
        "IMAGE": image,
        "REGISTRY": image.split("/", 1)[0],
        BENTOML_OVERRIDES_ENV: with_workers(settings.get(BENTOML_OVERRIDES_ENV), bento, workers),
    }
    if vcpus:
        changes.update(thread_env(vcpus / workers))

    def replace(match: re.Match[str]) -> str:
        key = match[1]
        return f"readonly {key}={shlex.quote(changes[key])}" if key in changes else match[0]

    return _ASSIGNMENT.sub(replace, script)
