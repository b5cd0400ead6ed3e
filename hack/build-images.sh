#!/usr/bin/env bash
# Builds the three images (images/{operator,trainer,server}/Dockerfile) with buildah, chroot isolation, and
# no registry, into a container store outside the repository that the local node agent runs pods from.
#
# The Dockerfiles' base (python:3.11.14-slim-bookworm) cannot be pulled here, so a local base is made once
# by debootstrap: Debian bookworm (minbase) with Debian's Python 3.11, tagged with the Dockerfiles' base
# name. How it differs from the public image is in docs/images.md. Both are cached: the base's rootfs
# tarball and the store (with buildah's layer cache, so an unchanged pyproject.toml reuses the dependency
# layer and a code change rebuilds only the wheel layer).
#
# Usage: hack/build-images.sh [operator trainer server]   Prints one line per image: name, seconds, bytes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

cache_root=${MLOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-operator}
store=${MLOPS_IMAGE_STORE:-$cache_root/containers}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml" | head -1)
base_ref=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$repo/images/operator/Dockerfile")
base_name="docker.io/library/$base_ref"
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Debian's python3 (3.11 in bookworm), venv and pip for the build stage, CA certificates for HTTPS to PyPI,
# MLflow and object stores; python-is-python3 gives `python` as in the public image.
base_packages=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,tzdata
images=("$@")
[ ${#images[@]} -gt 0 ] || images=(operator trainer server)

log() { echo "[build-images] $*" >&2; }
need() {
  command -v buildah >/dev/null && command -v debootstrap >/dev/null && return
  log "installing buildah and debootstrap (Debian packages)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah debootstrap >/dev/null
}
need
[ "$(id -u)" = 0 ] || { log "run as root: debootstrap and buildah's chroot isolation need it"; exit 1; }

mkdir -p "$store/storage" "$cache_root/images"
# One build at a time per store (test workers each make sure the images are current); the others wait,
# then find them current.
exec 9>"$store/.build.lock"
flock 9
B=(buildah --root "$store/storage" --runroot "$store/run" --storage-driver overlay)

# -- the base ------------------------------------------------------------------------------------------
base_stamp=$(printf '%s\n' "$suite" "$base_packages" "$(sed -n '/^# -- the base/,/^# -- the images/p' "$0")" | sha256sum | cut -c1-12)
base_tar="$cache_root/images/base-$base_stamp.tar"
if [ "$("${B[@]}" inspect --type image --format '{{index .ImageAnnotations "dev.mlops.base-stamp"}}' "$base_name" 2>/dev/null)" != "$base_stamp" ]; then
  if [ ! -s "$base_tar" ]; then
    start=$(date +%s)
    rootfs=$(mktemp -d /tmp/mlops-base.XXXXXX)
    log "debootstrap $suite (minbase + $base_packages) into $rootfs"
    debootstrap --variant=minbase --include="$base_packages" "$suite" "$rootfs" "$mirror" >/dev/null
    # Slim: no package lists, caches, docs, man pages or locales; pip may install outside a venv as in the
    # public image (Debian marks its Python externally managed).
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/* \
      "$rootfs"/usr/lib/python3.11/EXTERNALLY-MANAGED
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
    find "$rootfs/usr/lib/python3" "$rootfs/usr/lib/python3.11" -name __pycache__ -prune -exec rm -rf {} +
    tar -C "$rootfs" --numeric-owner -cf "$base_tar.tmp" .
    mv "$base_tar.tmp" "$base_tar"
    rm -rf "$rootfs"
    log "base rootfs: $(du -h "$base_tar" | cut -f1) in $(( $(date +%s) - start ))s"
  fi
  ctr=$("${B[@]}" from --quiet scratch)
  "${B[@]}" add --quiet "$ctr" "$base_tar" / >/dev/null
  "${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd python3 --annotation "dev.mlops.base-stamp=$base_stamp" \
    --label "org.opencontainers.image.description=debootstrap $suite minbase with Debian's Python 3.11 (mlops-operator local base)" \
    "$ctr"
  "${B[@]}" commit --quiet --rm "$ctr" "$base_name" >/dev/null
  log "base tagged $base_name"
fi

# -- the images ----------------------------------------------------------------------------------------
# A TLS-intercepting proxy in front of PyPI (as on our machines) signs with a CA only the host trusts: its
# bundle is mounted for the RUN steps alone, so nothing of it stays in an image.
ca_mount=()
[ -s /etc/ssl/certs/ca-certificates.crt ] && ca_mount=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
# What an image is built from; an image labelled with the same hash is current and not rebuilt at all.
context_hash() {
  (cd "$repo" && { printf '%s\n' "images/$1/Dockerfile" pyproject.toml README.md LICENSE images/extra_requirements.py .dockerignore
    find operator -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*'; } | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
}
for image in "${images[@]}"; do
  tag="localhost/mlops-operator/$image:$version"
  source=$(context_hash "$image")
  built=$("${B[@]}" inspect --type image --format '{{index .OCIv1.Config.Labels "dev.mlops.source"}}' "$tag" 2>/dev/null || true)
  if [ "$built" = "$source" ]; then
    echo "$tag current $("${B[@]}" images --noheading --format '{{.Size}}' "$tag")"
    continue
  fi
  start=$(date +%s%N)
  "${B[@]}" bud --quiet --isolation chroot --layers --pull=never "${ca_mount[@]}" --label "dev.mlops.source=$source" \
    -f "$repo/images/$image/Dockerfile" -t "$tag" "$repo" >/dev/null
  seconds=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  echo "$tag ${seconds}s $("${B[@]}" images --noheading --format '{{.Size}}' "$tag")"
done
# No `rmi --prune`: the build stage's layers are untagged, and they are the cache.
