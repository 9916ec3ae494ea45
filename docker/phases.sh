#!/usr/bin/env bash
# Start and stop the platform's Compose phases (make up-p1 | up-p2 | up-p3 | up-monitoring,
# make down), waiting on every container's health check, then printing what answers where.
#
#   docker/phases.sh up p1|p2|p3|monitoring
#   docker/phases.sh files p1|p2|p3           # the -f arguments a phase uses (same choices)
#   docker/phases.sh down [--volumes]         # stop the phases and the monitoring stack
#
#   p1          inference (llama.cpp's server) + gateway                compose.p1.yml
#   p2          p1 + embeddings, Qdrant and RAG                          + compose.p2.yml
#               (the RAG service computes embeddings itself: multilingual model, or
#               RAG_EMBEDDING_BACKEND=openai for the gateway's /v1/embeddings)
#   p3          p2 + the MCP tool server                                 + compose.p3.yml
#   monitoring  p3, then Prometheus, Alertmanager, Loki, Alloy and Grafana
#               (compose.monitoring.yml, its own project ai-suite-monitoring, host network)
#
# Before starting anything every image the phase needs is checked: the project's own images
# are built when missing (docker/build-images.sh, no registry needed); any other image must
# be present or pullable, otherwise the script lists them all with how to load them and
# exits 1 without starting anything.
#
# Environment (besides the Compose files' own variables, docs/docker.md):
#   INFERENCE_MODE   auto (default): llama-cpp when AI_SUITE_MODELS_DIR is set, else tiny
#                    llama-cpp: INFERENCE_IMAGE (llama.cpp's server) on your GGUF model
#                      AI_SUITE_MODELS_DIR/INFERENCE_MODEL
#                    tiny: llama.cpp's server on a tiny generated model (random weights:
#                      real API, noise answers) from the image `build-images.sh --llama-test`
#                      builds (compose.p1.tiny.yml)
#   QDRANT_MODE      auto (default): server when QDRANT_IMAGE is present or pullable, else
#                    embedded (saying so); server | embedded (compose.p2.embedded.yml)
#   COMPOSE_PROJECT_NAME  the phases' project (default: local-ai-suite, from compose.p1.yml)
#   MONITORING_PROJECT_NAME  the monitoring stack's project (default: ai-suite-monitoring)
#   PHASE_WAIT_TIMEOUT    seconds `up --wait` waits for every health check (default 600)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DOCKER_DIR="$ROOT/docker"
PROJECT="${COMPOSE_PROJECT_NAME:-local-ai-suite}"
MONITORING_PROJECT="${MONITORING_PROJECT_NAME:-ai-suite-monitoring}"
AI_SUITE_LLAMA_IMAGE="${AI_SUITE_LLAMA_IMAGE:-local-ai-suite-llama:latest}"
QDRANT_IMAGE="${QDRANT_IMAGE:-qdrant/qdrant:v1.15.5}"
WAIT_TIMEOUT="${PHASE_WAIT_TIMEOUT:-600}"
# Compose must see exactly the files and project named here, not a caller's COMPOSE_FILE.
unset COMPOSE_FILE COMPOSE_PROFILES COMPOSE_PROJECT_NAME

say() { echo "phases: $*"; }
die() { echo "phases: error: $*" >&2; exit 1; }

image_present() { docker image inspect "$1" >/dev/null 2>&1; }

# Present, or pulled now. A registry that cannot be reached fails in well under a second.
image_available() {
    image_present "$1" && return 0
    say "pulling $1" >&2
    docker pull -q "$1" >/dev/null 2>&1
}

inference_mode() {
    local mode="${INFERENCE_MODE:-auto}"
    case "$mode" in
        auto) if [ -n "${AI_SUITE_MODELS_DIR:-}" ]; then echo llama-cpp; else echo tiny; fi ;;
        llama-cpp | tiny) echo "$mode" ;;
        *) die "INFERENCE_MODE=$mode: use auto, llama-cpp or tiny" ;;
    esac
}

qdrant_mode() {
    local mode="${QDRANT_MODE:-auto}"
    case "$mode" in
        auto) if image_available "$QDRANT_IMAGE"; then echo server; else echo embedded; fi ;;
        server | embedded) echo "$mode" ;;
        *) die "QDRANT_MODE=$mode: use auto, server or embedded" ;;
    esac
}

# The phase's compose files, as -f arguments, into the array FILES (and the modes chosen
# into INFERENCE and QDRANT).
phase_files() {
    local phase="$1"
    case "$phase" in p1 | p2 | p3 | monitoring) ;; *) die "unknown phase '$phase' (p1, p2, p3, monitoring)" ;; esac
    INFERENCE="$(inference_mode)"
    FILES=(-f "$DOCKER_DIR/compose.p1.yml")
    [ "$INFERENCE" = tiny ] && FILES+=(-f "$DOCKER_DIR/compose.p1.tiny.yml")
    QDRANT=none
    [ "$phase" = p1 ] && return 0
    QDRANT="$(qdrant_mode)"
    FILES+=(-f "$DOCKER_DIR/compose.p2.yml")
    [ "$QDRANT" = embedded ] && FILES+=(-f "$DOCKER_DIR/compose.p2.embedded.yml")
    [ "$phase" = p2 ] && return 0
    FILES+=(-f "$DOCKER_DIR/compose.p3.yml")
}

# The inference image compose.p1.yml names (INFERENCE_IMAGE or its default).
inference_image() { compose config --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["services"]["inference"]["image"])'; }

compose() { docker compose -p "$PROJECT" "${FILES[@]}" "$@"; }
monitoring_compose() { docker compose -p "$MONITORING_PROJECT" -f "$DOCKER_DIR/compose.monitoring.yml" "$@"; }

# Build the project's own images when missing; every other image must be present or pulled.
# Lists everything that is still missing, with how to get it, and fails.
ensure_images() {
    local image missing=() build=0 flags=()
    for image in "$@"; do
        image_present "$image" && continue
        if [ "$image" = local-ai-suite:latest ]; then build=1
        elif [ "$image" = "$AI_SUITE_LLAMA_IMAGE" ]; then build=1; flags=(--llama-test)
        elif ! image_available "$image"; then missing+=("$image"); fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        {
            echo "phases: error: these images are neither present nor pullable here (no registry access?):"
            printf '    %s\n' "${missing[@]}"
            echo "  On a machine that can pull them: docker pull IMAGE && docker save IMAGE | gzip > image.tar.gz,"
            echo "  then here: docker load < image.tar.gz. Or name images you have with the *_IMAGE"
            echo "  variables (docs/docker.md). Nothing was started."
            if [ "$INFERENCE" = llama-cpp ] && [[ " ${missing[*]} " == *" $(inference_image) "* ]]; then
                echo "  Without the llama.cpp image: INFERENCE_MODE=tiny runs the phases on a tiny generated model."
            fi
        } >&2
        exit 1
    fi
    [ "$build" = 1 ] || return 0
    # build-images.sh always (re)builds the service image too: Docker's layer cache makes
    # that quick when it exists.
    say "building the missing project images: docker/build-images.sh ${flags[*]}"
    IMAGE=local-ai-suite:latest LLAMA_IMAGE="$AI_SUITE_LLAMA_IMAGE" "$DOCKER_DIR/build-images.sh" "${flags[@]}"
}

check_model() {
    [ "$INFERENCE" = llama-cpp ] || return 0
    local dir="${AI_SUITE_MODELS_DIR:-}" model="${INFERENCE_MODEL:-model.gguf}"
    # A host directory (a path, not a volume name) must hold the model the server loads.
    if [[ "$dir" == /* || "$dir" == .* ]] && [ ! -f "$dir/$model" ]; then
        die "INFERENCE_MODE=llama-cpp: no model $dir/$model; put a GGUF model there and set" \
            "INFERENCE_MODEL to its file name, or use INFERENCE_MODE=tiny to try the phases"
    fi
}

# "service container-port what" of every service that publishes a port.
SERVICES_SHOWN=(
    "inference 8080 llama.cpp server, OpenAI API at /v1"
    "gateway 8000 OpenAI-compatible API at /v1, /ready, /metrics, /docs"
    "qdrant 6333 Qdrant server"
    "rag 8002 RAG API at /v1/rag, /ready, /docs"
    "mcp 8020 MCP at /mcp, REST tools at /v1/tools, /ready"
)

print_urls() {
    local line service port what address
    echo "phases: every container is healthy (project $PROJECT):"
    for line in "${SERVICES_SHOWN[@]}"; do
        read -r service port what <<<"$line"
        address="$(compose port "$service" "$port" 2>/dev/null)" || continue
        [ -n "$address" ] || continue
        printf '  %-10s http://%s  %s\n' "$service" "$address" "$what"
    done
    [ "$INFERENCE" = tiny ] && echo "  inference runs a TINY GENERATED model (random weights): real API, noise answers;" \
        "set AI_SUITE_MODELS_DIR and INFERENCE_MODEL for a real one"
    [ "$QDRANT" = embedded ] && echo "  RAG keeps its vectors in Qdrant's embedded mode in the data volume (no Qdrant container)"
    return 0
}

print_monitoring_urls() {
    echo "phases: monitoring is healthy (project $MONITORING_PROJECT, host network):"
    printf '  %-12s %s\n' prometheus http://127.0.0.1:9090 alertmanager http://127.0.0.1:9093 \
        loki http://127.0.0.1:3100 alloy http://127.0.0.1:12345 \
        grafana "http://127.0.0.1:3000 (admin / \$GRAFANA_ADMIN_PASSWORD, default admin)"
}

up() {
    local phase="$1" images
    docker info >/dev/null 2>&1 || die "no Docker engine answers \`docker info\`; start one with \`make docker-up\`"
    docker compose version >/dev/null 2>&1 || die "Docker Compose v2 (\`docker compose\`) is missing; \`make docker-up\` installs it"
    phase_files "$phase"
    say "$phase: inference=$INFERENCE qdrant=$QDRANT project=$PROJECT"
    check_model
    images="$(compose config --images)"
    if [ "$phase" = monitoring ]; then
        images="$images"$'\n'"$(monitoring_compose config --images)"
    fi
    # shellcheck disable=SC2086  # one image name per line, no spaces in names
    ensure_images $(sort -u <<<"$images")
    local names=() word
    for word in "${FILES[@]}"; do [ "$word" = -f ] || names+=("${word##*/}"); done
    say "starting ${names[*]} (waits up to ${WAIT_TIMEOUT}s for the health checks)"
    compose up -d --wait --wait-timeout "$WAIT_TIMEOUT" --remove-orphans
    print_urls
    [ "$phase" = monitoring ] || return 0
    # compose.monitoring.yml mounts $AI_SUITE_DATA_DIR/logs (default ./data/logs): create it
    # as the caller, or Docker would create it owned by root.
    mkdir -p "${AI_SUITE_DATA_DIR:-$ROOT/data}/logs"
    monitoring_compose up -d --wait --wait-timeout "$WAIT_TIMEOUT"
    print_monitoring_urls
}

down() {
    local args=(down --remove-orphans)
    case "${1:-}" in
        "") say "keeping the data volumes (--volumes removes them)" ;;
        --volumes) args+=(--volumes) ;;
        *) die "down takes only --volumes" ;;
    esac
    docker info >/dev/null 2>&1 || die "no Docker engine answers \`docker info\`: nothing to stop"
    # By project label: whatever phase is running, with whichever files started it.
    docker compose -p "$MONITORING_PROJECT" "${args[@]}"
    docker compose -p "$PROJECT" "${args[@]}"
    say "stopped the projects $PROJECT and $MONITORING_PROJECT (the Docker engine keeps running)"
}

case "${1:-}" in
    up) [ $# = 2 ] || die "usage: $0 up p1|p2|p3|monitoring"; up "$2" ;;
    files) [ $# = 2 ] || die "usage: $0 files p1|p2|p3"; phase_files "$2"; echo "${FILES[*]}" ;;
    down) shift; down "$@" ;;
    *) echo "usage: $0 up p1|p2|p3|monitoring | files PHASE | down [--volumes]" >&2; exit 2 ;;
esac
