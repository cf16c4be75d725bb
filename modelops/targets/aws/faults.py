"""Fault injection for the failover suite on aws: crash one replica abruptly, as a bug or the OOM killer would.

Terminating the instance through Auto Scaling is no crash: the group deregisters it first and the target group
drains it for its deregistration delay, so the suite would time a graceful exit. Instead the bento's process is
killed with SIGKILL inside its container (SSM Run Command on the instance, which runs Session Manager's agent
already): the ALB sees failed requests and health checks at once, Docker's restart policy brings the container
back, as it would after a real crash. An instance SSM cannot reach (agent not registered yet) is stopped hard
(EC2 StopInstances with Force: no OS shutdown), and its group replaces it.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

CONTAINER = "bento"  # stacks/aws/user_data.sh: `docker run --name bento`
# The container's main process, not `docker kill`: Docker treats a kill it was asked for as a manual stop and does
# not restart the container; a process that dies is restarted (--restart unless-stopped), as in production.
KILL_COMMAND = f"kill -KILL \"$(docker inspect --format '{{{{.State.Pid}}}}' {CONTAINER})\""
DOCUMENT = "AWS-RunShellScript"


def crash(ssm: Any, ec2: Any, instance_id: str) -> str:
    """SIGKILL the bento on ``instance_id``; returns how ("ssm:<command id>" or "ec2:force-stop")."""
    try:
        sent = ssm.send_command(
            InstanceIds=[instance_id],
            DocumentName=DOCUMENT,
            Parameters={"commands": [KILL_COMMAND]},
            Comment="modelops failover suite: crash the bento",
            TimeoutSeconds=30,
        )
        return f"ssm:{sent['Command']['CommandId']}"
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("InvalidInstanceId", "UnsupportedPlatformType"):
            raise
    ec2.stop_instances(InstanceIds=[instance_id], Force=True)
    return "ec2:force-stop"
