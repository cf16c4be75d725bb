"""The Pulumi program: the stack's settings → the target's components → stack outputs (names: stacks/outputs.py).

Run it with the Pulumi CLI (`pulumi up -s kind`, `pulumi up -s aws`; stacks/RUNNING.md), or offline under mocks
with `modelops render --stack <stack> --out DIR`.
"""

import pulumi

from stacks.config import from_pulumi

settings = from_pulumi()
if settings.target == "kind":
    from stacks.kind import build
elif settings.target == "aws":
    from stacks.aws import build
else:
    # The local target is processes + HAProxy on this machine, driven by modelops itself: nothing for Pulumi.
    raise pulumi.RunError(
        f"stack {settings.stack!r} has target {settings.target!r}, which has no Pulumi resources: "
        f"run `modelops up --stack {settings.stack}` instead (Pulumi deploys the kind and aws stacks)"
    )

for key, value in build(settings).items():
    pulumi.export(key, value)
