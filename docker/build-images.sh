#!/usr/bin/env bash
# Build the platform's one service image without needing an image registry.
#
#   docker/build-images.sh                 # the service image
#   docker/build-images.sh --llama-test    # and the llama.cpp TEST image (make test-compose)
#   docker/build-images.sh --adopter-example  # and examples/adopter's Redis, PostgreSQL and app images
#   docker/build-images.sh --context-only  # only the service image's build context (the
#                                          # release workflow builds it for amd64 and arm64)
#
# 1. Base image (docker/Dockerfile's BASE_IMAGE build argument). Default: a Debian bookworm
#    image built here with debootstrap from the Debian mirror this machine already uses,
#    `docker import`ed as LOCAL_BASE_IMAGE (no registry needed). With BASE_IMAGE set (the
#    GitHub workflows: python:3.11-slim) that image, pulled if absent; a failed pull fails
#    the build. The host's PYTHON must be the base's Python series (the wheels are built
#    on the host).
# 2. Wheels: every locked runtime dependency (`uv export --frozen --no-dev`) and the
#    project itself, built on the host with `pip wheel`; the image installs them with
#    `pip install --no-index`, so the build needs no network either.
# 3. The service image (docker/Dockerfile): gateway, MCP server, RAG service and the
#    inference test stub, each started with its own command.
# 4. With --llama-test: LLAMA_IMAGE (docker/llama/Dockerfile), llama.cpp's server on a tiny
#    generated model for the e2e tests, from the wheel docker/llama/wheel.sh builds on the
#    host (a compile of about 4-10 minutes the first time on a machine, reused afterwards).
# 5. With --adopter-example: the images of examples/adopter/compose.yml (the example's stack
#    on the compose backend), from examples/adopter/docker/Dockerfile: Redis and PostgreSQL
#    from Debian's packages (apt in the build), the notes app from a wheel built here.
#
# Idempotent: an existing base image, existing wheels and Docker's layer cache are reused.
# The image the tag named before a rebuild is removed, unless a container still uses it.
#
# Environment:
#   IMAGE              image to build (default: local-ai-suite:latest)
#   LLAMA_IMAGE        llama.cpp test image, with --llama-test (default: local-ai-suite-llama:latest)
#   ADOPTER_IMAGE      prefix of the example's images, with --adopter-example
#                      (default: local-ai-suite-adopter: -redis, -postgres, -app, tag latest)
#   BASE_IMAGE         a registry base instead of the Debian-built one (e.g. python:3.11-slim)
#   LOCAL_BASE_IMAGE   name of the debootstrapped base (default: local-ai-suite-base:bookworm)
#   DEBIAN_MIRROR      mirror for debootstrap (default: taken from /etc/apt)
#   BUILD_DIR          scratch space (default: <repo>/build/docker)
#   PYTHON             host Python 3.11 with pip, for `pip wheel` (default: python3)
#   EXTRA_WHEEL_PLATFORMS  pip platform tags (e.g. manylinux_2_17_aarch64) whose binary
#                      wheels are added to the context, for a multi-platform build
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
IMAGE="${IMAGE:-local-ai-suite:latest}"
LLAMA_IMAGE="${LLAMA_IMAGE:-local-ai-suite-llama:latest}"
ADOPTER_IMAGE="${ADOPTER_IMAGE:-local-ai-suite-adopter}"
with_llama=0
with_adopter=0
context_only=0
for arg in "$@"; do
    case "$arg" in
        --llama-test) with_llama=1 ;;
        --adopter-example) with_adopter=1 ;;
        --context-only) context_only=1 ;;
        *) echo "build-images: error: unknown argument $arg (known: --llama-test, --adopter-example, --context-only)" >&2; exit 2 ;;
    esac
done
BASE_IMAGE="${BASE_IMAGE:-}"
LOCAL_BASE_IMAGE="${LOCAL_BASE_IMAGE:-local-ai-suite-base:bookworm}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/docker}"
PYTHON="${PYTHON:-python3}"
CONTEXT="$BUILD_DIR/context"
WHEELS="$CONTEXT/wheels"

START=$SECONDS
step_start=$SECONDS
step() { step_start=$SECONDS; echo; echo "== build-images: $*"; }
done_step() { echo "   done in $((SECONDS - step_start))s"; }
die() { echo "build-images: error: $*" >&2; exit 1; }

docker info >/dev/null 2>&1 \
    || die "no Docker engine answers \`docker info\`; start one with \`docker/dockerd.sh start\`"

# -- 1. base image -------------------------------------------------------------------

debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local uri=""
    # deb822 sources (Debian 12 default): the URIs of the stanza whose Suites has bookworm.
    if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
        uri="$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' \
            /etc/apt/sources.list.d/*.sources)"
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri="$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list)"
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

debootstrap_base() {
    [ "$(id -u)" = 0 ] || die "building the Debian base image needs root (debootstrap); run as root or make BASE_IMAGE pullable"
    if ! command -v debootstrap >/dev/null; then
        command -v apt-get >/dev/null || die "debootstrap is missing and apt-get is not available to install it"
        echo "   installing debootstrap (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    fi
    local mirror rootfs
    mirror="$(debian_mirror)"
    rootfs="$BUILD_DIR/rootfs"
    rm -rf "$rootfs"
    echo "   debootstrap bookworm from $mirror into $rootfs (about a minute)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$rootfs" "$mirror" >"$BUILD_DIR/debootstrap.log" 2>&1 \
        || { tail -n 30 "$BUILD_DIR/debootstrap.log" >&2; die "debootstrap failed (log: $BUILD_DIR/debootstrap.log)"; }
    # Package caches are not part of the image.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    echo "   docker import as $LOCAL_BASE_IMAGE"
    tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$LOCAL_BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
}

step "base image"
mkdir -p "$BUILD_DIR"
base=""
if [ -n "$BASE_IMAGE" ]; then
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        echo "   $BASE_IMAGE is present"
    # A registry that does not answer must not hang the build: five minutes is ample.
    elif timeout 300 docker pull -q "$BASE_IMAGE" >"$BUILD_DIR/pull.log" 2>&1; then
        echo "   pulled $BASE_IMAGE"
    else
        die "cannot pull BASE_IMAGE=$BASE_IMAGE ($(tail -n 1 "$BUILD_DIR/pull.log")); unset BASE_IMAGE to build the Debian base here"
    fi
    base="$BASE_IMAGE"
else
    if docker image inspect "$LOCAL_BASE_IMAGE" >/dev/null 2>&1; then
        echo "   $LOCAL_BASE_IMAGE is present (delete it to rebuild from Debian packages)"
    else
        debootstrap_base
    fi
    base="$LOCAL_BASE_IMAGE"
fi
done_step

# The wheels are built on the host, so the host's Python must be the base image's.
PY_SERIES="$(docker run --rm --entrypoint python3 "$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
    || die "cannot run python3 in the base image $base"
echo "   the base's Python: $PY_SERIES"

# -- 2. wheels on the host ------------------------------------------------------------

step "wheels for Python $PY_SERIES (host: $PYTHON)"
"$PYTHON" -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != sys.argv[1])" "$PY_SERIES" \
    || die "$PYTHON is not Python $PY_SERIES; set PYTHON to a $PY_SERIES interpreter with pip"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip; set PYTHON to one that has"
if command -v uv >/dev/null; then UV=(uv)
elif "$PYTHON" -m uv --version >/dev/null 2>&1; then UV=("$PYTHON" -m uv)
else die "uv is needed for \`uv export\` (\`make install\` installs it)"; fi
mkdir -p "$WHEELS"
(cd "$ROOT" && "${UV[@]}" export --frozen --no-dev --no-hashes --no-emit-workspace \
    --format requirements-txt --quiet -o "$CONTEXT/requirements.txt") \
    || die "uv export failed: is uv.lock in sync with pyproject.toml?"
# Skipped when the locked requirements did not change since the last successful build.
stamp="$WHEELS/.requirements.sha256"
if [ -f "$stamp" ] && sha256sum --status -c "$stamp" 2>/dev/null; then
    echo "   locked dependencies unchanged: reusing their wheels"
else
    # --find-links: wheels from an earlier build are reused instead of fetched again.
    "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --find-links "$WHEELS" \
        -w "$WHEELS" -r "$CONTEXT/requirements.txt" || die "pip wheel of the locked dependencies failed"
    sha256sum "$CONTEXT/requirements.txt" >"$stamp"
fi
# Other platforms' binary wheels (pure-Python ones built above serve every platform). One
# pip call for all the tags: a package may publish its wheel under any one of them.
if [ -n "${EXTRA_WHEEL_PLATFORMS:-}" ]; then
    platform_args=()
    for platform in $EXTRA_WHEEL_PLATFORMS; do platform_args+=(--platform "$platform"); done
    echo "   binary wheels for $EXTRA_WHEEL_PLATFORMS"
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
        "${platform_args[@]}" --python-version "$PY_SERIES" --implementation cp \
        --find-links "$WHEELS" -d "$WHEELS" -r "$CONTEXT/requirements.txt" \
        || die "pip download of the wheels for $EXTRA_WHEEL_PLATFORMS failed"
fi
rm -f "$WHEELS"/local_ai_suite-*.whl "$WHEELS"/ai_suite_procs-*.whl
(cd "$ROOT" && "${UV[@]}" build --wheel --quiet --out-dir "$WHEELS") || die "building the project wheel failed"
# The process core (procs/, a workspace member the project depends on) is built here too.
(cd "$ROOT" && "${UV[@]}" build --wheel --quiet --out-dir "$WHEELS" procs) \
    || die "building the process core's wheel (procs/) failed"
echo "   $(find "$WHEELS" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELS" | cut -f1)"
done_step

# -- 3. service image -----------------------------------------------------------------

if [ "$context_only" = 1 ]; then step "build context of the service image (--context-only: no image)"
else step "service image $IMAGE (FROM $base)"; fi
# The inference test stub is not part of the wheel; it rides along for compose.test.yml.
rm -rf "$CONTEXT/app"
mkdir -p "$CONTEXT/app/tests/stubs"
cp "$ROOT/tests/__init__.py" "$CONTEXT/app/tests/__init__.py"
cp "$ROOT/tests/stubs/__init__.py" "$ROOT/tests/stubs/inference.py" "$CONTEXT/app/tests/stubs/"
if [ "$context_only" = 1 ]; then
    echo "build-images: the build context is ready in $CONTEXT (FROM $base)"
    exit 0
fi
# BuildKit is needed (RUN --mount keeps the wheels out of the image, and the legacy builder
# commits a full file-system copy per Dockerfile step under vfs: minutes per step).
# Docker >= 23 has it through the buildx plugin; Debian's docker.io 20.10 client has it
# built in behind DOCKER_BUILDKIT=1.
builder=()
if docker buildx version >/dev/null 2>&1; then
    builder=(docker buildx build --load)
else
    for client in "$(command -v docker)" /usr/bin/docker; do
        [ -x "$client" ] || continue
        major="$("$client" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)"
        if [ -n "$major" ] && [ "$major" -lt 23 ]; then
            builder=(env DOCKER_BUILDKIT=1 "$client" build); break
        fi
    done
fi
[ "${#builder[@]}" -gt 0 ] || die "BuildKit is not available: install the docker buildx plugin" \
    "(Docker >= 23) or Debian's docker.io (20.10, BuildKit built in)"
echo "   builder: ${builder[*]}"

# build_image TAG DOCKERFILE CONTEXT LOG [BUILD ARGS...]: build, then drop the image TAG
# named before.
build_image() {
    local tag="$1" dockerfile="$2" context="$3" log="$4" previous="" current
    shift 4
    if docker image inspect "$tag" >/dev/null 2>&1; then
        previous="$(docker image inspect -f '{{.Id}}' "$tag")"
    fi
    "${builder[@]}" --progress=plain -f "$dockerfile" --build-arg "BASE_IMAGE=$base" "$@" \
        -t "$tag" "$context" >"$log" 2>&1 \
        || { tail -n 40 "$log" >&2; die "docker build of $tag failed (log: $log)"; }
    echo "   $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
    current="$(docker image inspect -f '{{.Id}}' "$tag")"
    if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
        # The tag moved on: the image it named before would stay behind, untagged, at every
        # build. A container that still uses it (even a stopped one) keeps it.
        if docker image rm "$previous" >/dev/null 2>&1; then
            echo "   removed the image $tag named before (${previous:7:12})"
        else
            echo "   kept the image $tag named before (${previous:7:12}): a container still uses it"
        fi
    fi
}

build_image "$IMAGE" "$ROOT/docker/Dockerfile" "$CONTEXT" "$BUILD_DIR/build.log"
docker run --rm --entrypoint python "$IMAGE" -c "import services.gateway.app, tests.stubs.inference" \
    || die "the image was built but cannot import the gateway or the stub"
done_step

# -- 4. llama.cpp test image ------------------------------------------------------------

if [ "$with_llama" = 1 ]; then
    step "llama.cpp test image $LLAMA_IMAGE (FROM $base)"
    LLAMA_CONTEXT="$BUILD_DIR/llama-context"
    rm -rf "$LLAMA_CONTEXT/app"
    mkdir -p "$LLAMA_CONTEXT/wheels" "$LLAMA_CONTEXT/app/tests/support"
    # The server's pin, plus the gguf package that the launcher writes the model with, at
    # the version uv.lock holds for the tests.
    cp "$ROOT/tests/llama-requirements.txt" "$LLAMA_CONTEXT/requirements.txt"
    (cd "$ROOT" && "${UV[@]}" export --frozen --only-dev --no-hashes --no-emit-project \
        --format requirements-txt --quiet) | grep '^gguf==' >>"$LLAMA_CONTEXT/requirements.txt" \
        || die "uv.lock has no gguf in the dev group (the launcher needs it)"
    llama_wheels="$(PYTHON="$PYTHON" "$ROOT/docker/llama/wheel.sh")"
    # The server's dependencies as wheels, next to the one compiled on the host.
    "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --find-links "$llama_wheels" \
        --find-links "$LLAMA_CONTEXT/wheels" -w "$LLAMA_CONTEXT/wheels" \
        -r "$LLAMA_CONTEXT/requirements.txt" || die "pip wheel of the llama server's dependencies failed"
    cp "$ROOT/tests/__init__.py" "$LLAMA_CONTEXT/app/tests/__init__.py"
    cp "$ROOT/tests/support/__init__.py" "$ROOT/tests/support/tiny_gguf.py" \
        "$ROOT/tests/support/llama_launcher.py" "$LLAMA_CONTEXT/app/tests/support/"
    build_image "$LLAMA_IMAGE" "$ROOT/docker/llama/Dockerfile" "$LLAMA_CONTEXT" "$BUILD_DIR/llama-build.log"
    docker run --rm --entrypoint python "$LLAMA_IMAGE" -c "import llama_cpp, tests.support.llama_launcher" \
        || die "the llama image was built but cannot import llama_cpp or the launcher"
    done_step
fi

# -- 5. the adopter example's images ----------------------------------------------------

if [ "$with_adopter" = 1 ]; then
    step "adopter example images $ADOPTER_IMAGE-{redis,postgres,app} (FROM $base)"
    ADOPTER_CONTEXT="$BUILD_DIR/adopter-context"
    rm -rf "$ADOPTER_CONTEXT"
    mkdir -p "$ADOPTER_CONTEXT/wheels"
    cp "$ROOT/examples/adopter/start-postgres.sh" "$ADOPTER_CONTEXT/"
    (cd "$ROOT/examples/adopter" && "${UV[@]}" build --wheel --quiet --out-dir "$ADOPTER_CONTEXT/wheels") \
        || die "building the adopter example's wheel failed"
    # Its one dependency, at the version uv.lock holds (the platform's wheels above).
    cp "$WHEELS"/prometheus_client-*.whl "$ADOPTER_CONTEXT/wheels/" \
        || die "no prometheus_client wheel among the platform's wheels ($WHEELS)"
    # apt reaches the Debian mirror through the host's network: the engine may have no NAT
    # for its bridge (docker/dockerd.sh runs it with --iptables=false).
    for target in redis postgres app; do
        build_image "$ADOPTER_IMAGE-$target:latest" "$ROOT/examples/adopter/docker/Dockerfile" \
            "$ADOPTER_CONTEXT" "$BUILD_DIR/adopter-$target-build.log" --target "$target" --network host
    done
    docker run --rm "$ADOPTER_IMAGE-app:latest" python -c "import adopter_app.app" \
        || die "the adopter app image was built but cannot import adopter_app"
    docker run --rm "$ADOPTER_IMAGE-postgres:latest" sh -c 'ls /usr/lib/postgresql/*/bin/initdb' >/dev/null \
        || die "the adopter postgres image has no initdb"
    done_step
fi

echo
built="$IMAGE"
[ "$with_llama" = 1 ] && built="$built, $LLAMA_IMAGE"
[ "$with_adopter" = 1 ] && built="$built, $ADOPTER_IMAGE-{redis,postgres,app}"
echo "build-images: $built ready in $((SECONDS - START))s"
