#!/usr/bin/env bash
# A Debian bookworm base image with Python 3.11 (the distribution python:3.11-slim is built on), made without a
# registry: debootstrap from the Debian mirror + `docker import`. For machines that cannot pull python:3.11-slim
# (ours: no registry is reachable); elsewhere the bento's Dockerfile template uses python:3.11-slim as it is.
#
# Usage: stacks/container/base_image.sh NAME [CA_BUNDLE]
# Makes two images and prints their references, one per line:
#   NAME:bookworm-<hash>        the runtime base: minbase + python3 (+ venv's ensurepip) + Debian's CA certificates
#   NAME-build:bookworm-<hash>  the same plus CA_BUNDLE as /etc/ssl/certs/modelops-build-ca.crt with PIP_CERT and
#                               SSL_CERT_FILE pointing at it: pip in the build stage reaches PyPI through a TLS proxy.
#                               Only the build stage runs FROM it, so the shipped image never contains that bundle.
# <hash> is this script's own hash: an image made once per machine is reused until the script changes.
# Needs root (debootstrap, chroot), debootstrap and a running Docker engine.
set -euo pipefail

name=${1:?usage: base_image.sh NAME [CA_BUNDLE]}
ca_bundle=${2:-/etc/ssl/certs/ca-certificates.crt}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
version="bookworm-$(sha256sum "$0" | cut -c1-10)"
runtime="${name}:${version}"
build="${name}-build:${version}"
scratch=()
trap 'rm -rf "${scratch[@]}"' EXIT

if ! docker image inspect "$runtime" >/dev/null 2>&1; then
  root=$(mktemp -d "${TMPDIR:-/tmp}/modelops-rootfs.XXXXXX")
  scratch+=("$root")
  # minbase: essential packages + apt only; python3-venv brings ensurepip (pip for the build stage's venv).
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" >&2
  # What python:3.11-slim leaves out too: package caches and lists, documentation, man pages, translations.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/*
  ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
  tar -C "$root" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    - "$runtime" >&2
fi

if ! docker image inspect "$build" >/dev/null 2>&1; then
  context=$(mktemp -d "${TMPDIR:-/tmp}/modelops-build-base.XXXXXX")
  scratch+=("$context")
  cp "$ca_bundle" "$context/ca.crt"
  cat >"$context/Dockerfile" <<DOCKERFILE
FROM ${runtime}
COPY ca.crt /etc/ssl/certs/modelops-build-ca.crt
ENV PIP_CERT=/etc/ssl/certs/modelops-build-ca.crt SSL_CERT_FILE=/etc/ssl/certs/modelops-build-ca.crt
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build --quiet --tag "$build" "$context" >&2
fi
printf '%s\n%s\n' "$runtime" "$build"
