"""The AWS target driver (boto3 against what `pulumi up -s aws` made), split by concern: the driver itself, the
boot script it retargets, and launch template versions with their instance refreshes."""

from modelops.targets.aws.boot_script import boot_settings, retarget_boot_script
from modelops.targets.aws.driver import (
    AWS_ERRORS,
    BENTO_TAG,
    HELD_PROCESSES,
    REQUIRED_OUTPUTS,
    AwsTarget,
)
from modelops.targets.aws.launch_template import PoolSpec, start_and_wait_instance_refresh
from stacks.names import LIVE_TAG, PREVIOUS_TAG

__all__ = [
    "AWS_ERRORS",
    "BENTO_TAG",
    "HELD_PROCESSES",
    "LIVE_TAG",
    "PREVIOUS_TAG",
    "REQUIRED_OUTPUTS",
    "AwsTarget",
    "PoolSpec",
    "boot_settings",
    "retarget_boot_script",
    "start_and_wait_instance_refresh",
]
