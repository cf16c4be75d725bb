"""Render a stack offline: run the Pulumi program under mocks and write down every resource it declares.

No Pulumi engine, cloud or cluster is involved. The program (__main__.py) runs in a fresh Python process (Pulumi's
mocks are process-global) with the stack's settings from ``stacks/Pulumi.<stack>.yaml`` passed as Pulumi config;
a mock monitor records every resource registration: type, logical name, parent, provider, dependencies, options
and inputs. :func:`render_stack` then writes:

- ``resources.json``: the whole record (what the tests assert on) and ``outputs.json``: the stack outputs
- ``kubernetes/*.yaml``: every Kubernetes object, one per file (for kubernetes-validate and checkov)
- ``aws/*.json``: every AWS resource's inputs, and ``terraform-plan.json``: the same resources shaped like
  ``terraform show -json`` output (``aws:lb/loadBalancer:LoadBalancer`` → ``aws_lb``, camelCase → snake_case,
  references between resources as configuration expressions) so checkov's terraform_plan checks understand them
- ``scripts/*.sh``: the shell scripts the stack runs: pulumi_command scripts and decoded EC2 user data

Under mocks nothing runs: AWS lookups (AZs, AMI, instance vCPUs, account) and pulumi_command's ``stdout`` are
canned values.

Split by concern: :mod:`~modelops.render.runner` (the parent: subprocess, files), :mod:`~modelops.render.mocks`
(the child: the program under recording mocks, canned lookups), :mod:`~modelops.render.terraform_plan` (the AWS
resources shaped for checkov).
"""

from modelops.render.common import RenderError
from modelops.render.runner import record_in_subprocess, render_stack, write_rendering
from modelops.render.terraform_plan import snake, terraform_plan, terraform_type

__all__ = [
    "RenderError",
    "record_in_subprocess",
    "render_stack",
    "snake",
    "terraform_plan",
    "terraform_type",
    "write_rendering",
]
