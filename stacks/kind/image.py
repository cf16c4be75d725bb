"""The bento's image inside the kind node: `bentoml containerize` + `kind load docker-image` (pulumi_command)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from stacks import images


@dataclass(frozen=True)
class KindImageArgs:
    bento: str  # tag, or "" for the newest bento in the local store
    cluster_name: str
    cluster: pulumi.CustomResource | None  # the command that creates the cluster, when the stack creates it


class KindImage(pulumi.ComponentResource):
    """Runs stacks/kind/image.sh on create, and again when a trigger changes (the bento setting, the cluster).

    With ``modelops:bento`` empty, the newest bento at the first `up` is loaded and later builds are not picked
    up: set the tag to deploy a new bento declaratively.
    """

    def __init__(self, name: str, args: KindImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:kind:Image", name, None, opts)
        depends = [args.cluster] if args.cluster else []
        self.load = command.local.Command(
            f"{name}-build",
            create=images.script("kind"),
            interpreter=["/bin/bash", "-c"],
            environment={"BENTO": args.bento, "CLUSTER": args.cluster_name},
            triggers=[args.bento, args.cluster_name, *(c.id for c in depends)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )
        built = self.load.stdout.apply(images.parse_build_output)
        self.image = built.apply(lambda b: b.image)
        self.bento = built.apply(lambda b: b.bento)
        self.service = built.apply(lambda b: b.service)
        self.register_outputs({"image": self.image, "bento": self.bento})
