"""The ECR side of the aws driver: which image runs a bento, the protected tag every live image gets (the
repository's lifecycle policy never expires it), and the scan findings a promotion must pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from modelops.errors import DeploymentError, UsageError
from stacks.names import PROTECTED_TAG_PREFIX

# Findings of these severities stop a promotion. ECR basic scanning reports CRITICAL, HIGH, MEDIUM, LOW,
# INFORMATIONAL, UNDEFINED; enhanced scanning (Inspector) adds UNTRIAGED.
BLOCKING_SEVERITIES = ("CRITICAL",)


def split_image(image: str) -> tuple[str, str]:
    """(repository name, digest) of ``<registry>/<repository>@sha256:...``."""
    location, _, digest = image.partition("@")
    if not digest.startswith("sha256:") or "/" not in location:
        raise DeploymentError(f"{image!r} is not an ECR image by digest (<registry>/<repository>@sha256:...)")
    return location.split("/", 1)[1], digest


class Images:
    def __init__(
        self,
        ecr: Any,
        repository_url: str | None,
        *,
        blocking: tuple[str, ...] = BLOCKING_SEVERITIES,
        scan_wait_s: float = 600.0,
        poll_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ecr = ecr
        self.repository_url = repository_url
        self.blocking = blocking
        self.scan_wait_s = scan_wait_s
        self.poll_s = poll_s
        self._clock = clock
        self._sleep = sleep

    def by_version(self, bento: str, version: str) -> str:
        """``<repository>@sha256:...`` of the image stacks/aws/image.sh pushed for ``bento`` (tag = its version)."""
        if not self.repository_url:
            raise UsageError(f"the stack outputs have no repository_url: pass the image of {bento} explicitly")
        try:
            found = self.ecr.describe_images(
                repositoryName=self.repository_url.split("/", 1)[1], imageIds=[{"imageTag": version}]
            )["imageDetails"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ImageNotFoundException":
                raise
            found = []
        if not found:
            raise DeploymentError(
                f"{self.repository_url}:{version} is not in ECR: build and push {bento} first (BENTO={bento} "
                "stacks/aws/image.sh does, with REPOSITORY_URL, REGION and PLATFORM set), or pass its image"
            )
        # By digest, as the stack runs its own image: what was scanned on push is exactly what runs.
        return f"{self.repository_url}@{found[0]['imageDigest']}"

    def protect(self, image: str, version: str) -> None:
        """Tag ``image`` ``live-<version>``: the lifecycle policy keeps every image so tagged. Idempotent; tags are
        immutable, so the same manifest gets one more tag (what `docker tag` + push does)."""
        repository, digest = split_image(image)
        tag = f"{PROTECTED_TAG_PREFIX}{version or digest.split(':', 1)[1][:12]}"[:128]
        try:
            described = self.ecr.describe_images(repositoryName=repository, imageIds=[{"imageDigest": digest}])
        except ClientError as exc:
            missing = {"ImageNotFoundException", "RepositoryNotFoundException"}
            if exc.response.get("Error", {}).get("Code") not in missing:
                raise
            return  # an image outside this stack's repository (passed by hand): the policy never touches it
        if any(tag in d.get("imageTags", []) for d in described["imageDetails"]):
            return
        # One entry per tag of the digest: they share the manifest.
        got = self.ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageDigest": digest}])["images"][0]
        try:
            self.ecr.put_image(
                repositoryName=repository,
                imageManifest=got["imageManifest"],
                imageManifestMediaType=got.get("imageManifestMediaType")
                or "application/vnd.docker.distribution.manifest.v2+json",
                imageTag=tag,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("ImageAlreadyExistsException",):
                raise

    def check_scan(self, image: str, bento: str) -> None:
        """Refuse ``image`` while its scan is not complete (waiting up to ``scan_wait_s`` for a running one), or
        when it found vulnerabilities of a blocking severity. The repository scans on push (stacks/aws/registry.py)."""
        repository, digest = split_image(image)
        deadline = self._clock() + self.scan_wait_s
        while True:
            try:
                found = self.ecr.describe_image_scan_findings(
                    repositoryName=repository, imageId={"imageDigest": digest}
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ScanNotFoundException":
                    raise
                raise DeploymentError(
                    f"{image} ({bento}) has no scan: the promotion needs its scan findings. Start one with `aws ecr "
                    f"start-image-scan --repository-name {repository} --image-id imageDigest={digest}`"
                ) from exc
            status = found.get("imageScanStatus", {}).get("status", "UNKNOWN")
            if status == "COMPLETE":
                break
            if status not in ("IN_PROGRESS", "PENDING") or self._clock() >= deadline:
                description = found.get("imageScanStatus", {}).get("description", "")
                raise DeploymentError(
                    f"the scan of {image} ({bento}) is {status} ({description}): a promotion needs a complete scan. "
                    f"See `aws ecr describe-image-scan-findings --repository-name {repository} --image-id "
                    f"imageDigest={digest}`"
                )
            self._sleep(self.poll_s)
        counts = found.get("imageScanFindings", {}).get("findingSeverityCounts", {})
        blocking = {s: n for s, n in counts.items() if s in self.blocking and n}
        if blocking:
            listed = ", ".join(f"{n} {s}" for s, n in sorted(blocking.items()))
            raise DeploymentError(
                f"not moving traffic to {bento}: its image scan found {listed} vulnerabilities ({image}). Rebuild it "
                "on patched packages (a new bento version), then gate that one"
            )
