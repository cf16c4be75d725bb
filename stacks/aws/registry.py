"""ECR: the private registry the instances pull from, and the bento image pushed into it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_command as command

from stacks import images
from stacks.names import PROTECTED_TAG_PREFIX

KEEP_IMAGES = 30  # enough history to roll back across many promotions, few enough to stay cheap
UNTAGGED_DAYS = 7
# ECR's countNumber has no "infinity": a count no repository reaches keeps every protected image.
KEEP_ALL = 100_000


def lifecycle_policy() -> str:
    """Expire old candidates, never an image that has been live.

    ECR evaluates rules by priority, and an image matched by a rule cannot be expired by any rule of lower priority.
    Rule 1 matches every image carrying a protected tag (the driver adds ``live-<version>`` to each image it puts
    live) and keeps all of them; so the "keep the 30 newest" rule, which counts rejected candidates too, can never
    delete the live image or a rollback target, and scale-out and rollback can always pull them.
    """
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"keep every image that has been live ({PROTECTED_TAG_PREFIX}* tags)",
                    "selection": {
                        "tagStatus": "tagged",
                        "tagPatternList": [f"{PROTECTED_TAG_PREFIX}*"],
                        "countType": "imageCountMoreThan",
                        "countNumber": KEEP_ALL,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"drop untagged layers after {UNTAGGED_DAYS} days",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": UNTAGGED_DAYS,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 3,
                    "description": f"keep the {KEEP_IMAGES} newest other bento images (candidates)",
                    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": KEEP_IMAGES},
                    "action": {"type": "expire"},
                },
            ]
        }
    )


@dataclass(frozen=True)
class RegistryArgs:
    key_arn: pulumi.Input[str]
    force_delete: bool  # deletable with its images on `pulumi destroy`


class Registry(pulumi.ComponentResource):
    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:aws:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository = aws.ecr.Repository(
            name,
            # A tag is a bento version: it must always mean the same image, or a rollback could run new code.
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": args.key_arn}],
            force_delete=args.force_delete,
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle", repository=self.repository.name, policy=lifecycle_policy(), opts=child
        )
        self.arn = self.repository.arn
        self.url = self.repository.repository_url
        self.register_outputs({"repository_url": self.repository.repository_url})


@dataclass(frozen=True)
class BentoImageArgs:
    bento: str  # tag, or "" for the newest bento in the local store
    repository_url: pulumi.Input[str]
    region: str
    platform: str  # linux/amd64 or linux/arm64: the instances' architecture


class BentoImage(pulumi.ComponentResource):
    """``bentoml containerize`` + ``docker push`` to ECR, run on the machine that runs ``pulumi up``.

    pulumi_command runs stacks/aws/image.sh on create, and again only when a trigger changes (the bento setting,
    the repository, the platform). With ``modelops:bento`` empty the newest bento at first `up` is shipped and later
    builds are not picked up: set the tag to deploy a new bento declaratively.
    """

    def __init__(self, name: str, args: BentoImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("modelops:aws:BentoImage", name, None, opts)
        self.build = command.local.Command(
            f"{name}-build",
            create=images.script("aws"),
            interpreter=["/bin/bash", "-c"],
            environment={
                "BENTO": args.bento,
                "REPOSITORY_URL": args.repository_url,
                "REGION": args.region,
                "PLATFORM": args.platform,
            },
            triggers=[args.bento, args.repository_url, args.platform],
            opts=pulumi.ResourceOptions(parent=self),
        )
        built = self.build.stdout.apply(images.parse_build_output)
        self.image = built.apply(lambda b: b.image)
        self.bento = built.apply(lambda b: b.bento)
        self.service = built.apply(lambda b: b.service)
        self.register_outputs({"image": self.image, "bento": self.bento})
