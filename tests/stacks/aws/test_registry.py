"""stacks/aws/registry.py and keys.py: ECR with immutable, scanned, KMS-encrypted images; the image build."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass

import pytest

from stacks import images
from stacks.aws.registry import lifecycle_policy
from stacks.names import PROTECTED_TAG_PREFIX
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


def test_lifecycle_policy_is_the_stack_s_and_expires_only_what_was_never_live(aws_rendering) -> None:
    lifecycle = aws_rendering.inputs(LIFECYCLE, "bento-lifecycle")
    assert lifecycle["repository"] == aws_rendering.one(REPOSITORY, "bento")["outputs"]["name"]
    assert json.loads(lifecycle["policy"]) == json.loads(lifecycle_policy())
    rules = sorted(json.loads(lifecycle["policy"])["rules"], key=lambda r: r["rulePriority"])
    assert [r["selection"]["tagStatus"] for r in rules] == ["tagged", "untagged", "any"]
    assert rules[0]["selection"]["tagPatternList"] == [f"{PROTECTED_TAG_PREFIX}*"]
    assert all(r["action"] == {"type": "expire"} for r in rules)


@dataclass
class Image:
    pushed_day: int
    tags: list[str]


def expired_by(policy: dict, images: list[Image], today: int) -> list[Image]:
    """ECR's documented lifecycle evaluation: rules in priority order; an image matched by a rule's selection
    cannot be expired by a rule of lower priority; imageCountMoreThan keeps the newest N of the matched images,
    sinceImagePushed expires those older than N days."""
    claimed: set[int] = set()
    expired: list[Image] = []
    for rule in sorted(policy["rules"], key=lambda r: r["rulePriority"]):
        selection = rule["selection"]

        def matches(image: Image, selection: dict = selection) -> bool:
            status = selection["tagStatus"]
            if status == "untagged":
                return not image.tags
            if status == "any":
                return True
            patterns = selection.get("tagPatternList") or [p + "*" for p in selection.get("tagPrefixList", [])]
            return any(fnmatch.fnmatchcase(tag, pattern) for tag in image.tags for pattern in patterns)

        matched = [i for i in images if id(i) not in claimed and matches(i)]
        claimed.update(id(i) for i in matched)
        if selection["countType"] == "imageCountMoreThan":
            newest_first = sorted(matched, key=lambda i: i.pushed_day, reverse=True)
            expired += newest_first[selection["countNumber"] :]
        else:
            expired += [i for i in matched if today - i.pushed_day > selection["countNumber"]]
    return expired


def test_forty_rejected_candidates_never_expire_the_live_image_or_the_rollback_target() -> None:
    live_before = Image(1, ["v1", f"{PROTECTED_TAG_PREFIX}v1"])  # live once: the rollback target
    live_now = Image(2, ["v2", f"{PROTECTED_TAG_PREFIX}v2"])
    candidates = [Image(3 + n, [f"c{n}"]) for n in range(40)]  # rejected by the gate, newer than both
    expired = expired_by(json.loads(lifecycle_policy()), [live_before, live_now, *candidates], today=50)
    assert live_before not in expired and live_now not in expired
    assert sorted(i.pushed_day for i in expired) == list(range(3, 13)), "the 10 oldest candidates beyond 30 go"


def test_the_simulation_would_expire_a_live_image_under_a_keep_the_newest_rule_alone() -> None:
    """What the stack had before: keep the 30 newest, any tag. The check above is not vacuous."""
    old = {"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                                                       "countNumber": 30}, "action": {"type": "expire"}}]}  # fmt: skip
    live = Image(1, ["v1", f"{PROTECTED_TAG_PREFIX}v1"])
    assert live in expired_by(old, [live, *(Image(2 + n, [f"c{n}"]) for n in range(40))], today=50)


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
