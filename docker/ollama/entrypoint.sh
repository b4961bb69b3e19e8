#!/bin/sh
# Ollama with its models guaranteed: the container is healthy only once every model of
# $OLLAMA_MODEL (one name, or several separated by commas) is listed.
#   entrypoint.sh [serve]   start `ollama serve`, pull the missing models, keep serving
#   entrypoint.sh pull      start a temporary server, pull, stop (used at build time)
#   entrypoint.sh healthcheck   exit 0 iff the server answers /api/tags with every model in it
#   entrypoint.sh ARGS...   any other ollama command
set -eu

MODELS="$(printf '%s' "${OLLAMA_MODEL:-qwen2.5-coder:0.5b}" | tr ',' ' ')"
START_TIMEOUT="${OLLAMA_START_TIMEOUT:-60}"

has_model() {
    # `ollama list` is GET /api/tags; names may carry an implicit ":latest".
    ollama list 2>/dev/null | awk 'NR > 1 { print $1 }' \
        | grep -Fxq -e "$1" -e "$1:latest"
}

has_models() {
    for model in $MODELS; do
        has_model "$model" || return 1
    done
}

wait_for_server() {
    waited=0
    until ollama list >/dev/null 2>&1; do
        kill -0 "$1" 2>/dev/null || { echo "ollama serve exited" >&2; return 1; }
        [ "$waited" -lt $((START_TIMEOUT * 2)) ] || { echo "ollama serve not up" >&2; return 1; }
        waited=$((waited + 1))
        sleep 0.5
    done
}

ensure_models() {
    for model in $MODELS; do
        if has_model "$model"; then
            echo "model $model present"
        else
            echo "pulling $model"
            ollama pull "$model"
        fi
    done
}

case "${1:-serve}" in
    healthcheck)
        has_models
        ;;
    pull)
        ollama serve &
        server=$!
        wait_for_server "$server"
        ensure_models
        kill -TERM "$server"
        wait "$server" || true
        ;;
    serve)
        ollama serve &
        server=$!
        trap 'kill -TERM "$server" 2>/dev/null' TERM INT
        wait_for_server "$server"
        ensure_models || echo "pull of $MODELS failed: not healthy until present" >&2
        wait "$server"
        ;;
    *)
        exec ollama "$@"
        ;;
esac
