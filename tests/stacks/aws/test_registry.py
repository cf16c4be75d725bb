"""stacks/aws/registry.py and keys.py: ECR with immutable, scanned, KMS-encrypted images; the image build."""

from __future__ import annotations

import json

import pytest

from stacks import images
from tests.stacks.aws.types import COMMAND, KMS_KEY, LIFECYCLE, REPOSITORY


def test_repository_tags_are_immutable(aws_rendering) -> None:
    assert aws_rendering.inputs(REPOSITORY, "bento")["imageTagMutability"] == "IMMUTABLE"


def test_repository_scans_on_push(aws_rendering) -> None:
    assert aws_rendering.inputs(REPOSITORY, "bento")["imageScanningConfiguration"] == {"scanOnPush": True}


def test_repository_is_encrypted_with_its_own_kms_key(aws_rendering) -> None:
    key = aws_rendering.one(KMS_KEY, "ecr-key")["outputs"]["arn"]
    assert aws_rendering.inputs(REPOSITORY, "bento")["encryptionConfigurations"] == [
        {"encryptionType": "KMS", "kmsKey": key}
    ]


def test_lifecycle_policy_expires_untagged_layers_and_keeps_the_newest_images(aws_rendering) -> None:
    lifecycle = aws_rendering.inputs(LIFECYCLE, "bento-lifecycle")
    assert lifecycle["repository"] == aws_rendering.one(REPOSITORY, "bento")["outputs"]["name"]
    rules = sorted(json.loads(lifecycle["policy"])["rules"], key=lambda r: r["rulePriority"])
    assert [r["selection"]["tagStatus"] for r in rules] == ["untagged", "any"]
    assert rules[1]["selection"]["countType"] == "imageCountMoreThan"
    assert all(r["action"] == {"type": "expire"} for r in rules)


@pytest.mark.parametrize("name", ["logs-key", "ecr-key"])
def test_kms_keys_rotate_and_say_who_may_use_them(aws_rendering, name) -> None:
    key = aws_rendering.inputs(KMS_KEY, name)
    policy = json.loads(key["policy"])
    assert key["enableKeyRotation"] is True
    assert all(s["Principal"] != "*" and s["Principal"] != {"AWS": "*"} for s in policy["Statement"])


def test_logs_key_lets_cloudwatch_logs_of_this_account_only(aws_rendering, aws_settings) -> None:
    statements = json.loads(aws_rendering.inputs(KMS_KEY, "logs-key")["policy"])["Statement"]
    (logs,) = [s for s in statements if s["Principal"] == {"Service": f"logs.{aws_settings.aws.region}.amazonaws.com"}]
    context = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert context.startswith(f"arn:aws:logs:{aws_settings.aws.region}:123456789012:log-group:")


def test_image_is_built_with_bentoml_containerize_and_pushed_to_the_repository(aws_rendering, aws_settings) -> None:
    build = aws_rendering.inputs(COMMAND, "image-build")
    assert build["create"] == images.script("aws")
    assert build["interpreter"] == ["/bin/bash", "-c"]
    for step in ("containerize", "docker push", "aws ecr get-login-password", "imageDigest"):
        assert step in build["create"], f"the build script lacks {step!r}"
    assert build["environment"]["REPOSITORY_URL"] == aws_rendering.outputs["repository_url"]
    assert build["environment"]["BENTO"] == aws_settings.bento
    assert build["environment"]["PLATFORM"] == "linux/amd64"  # c7i: x86_64
    assert build["triggers"][0] == aws_settings.bento


def test_instances_run_the_image_by_digest_from_this_repository(aws_rendering) -> None:
    image = aws_rendering.outputs["image"]
    repository, _, digest = image.partition("@")
    assert repository == aws_rendering.outputs["repository_url"] and digest.startswith("sha256:")
