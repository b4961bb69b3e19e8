#!/bin/sh
# Ollama with its model guaranteed: the container is healthy only once $OLLAMA_MODEL is listed.
#   entrypoint.sh [serve]   start `ollama serve`, pull $OLLAMA_MODEL if missing, keep serving
#   entrypoint.sh pull      start a temporary server, pull, stop (used at build time)
#   entrypoint.sh healthcheck   exit 0 iff the server answers /api/tags with $OLLAMA_MODEL in it
#   entrypoint.sh ARGS...   any other ollama command
set -eu

MODEL="${OLLAMA_MODEL:-qwen2.5-coder:0.5b}"
START_TIMEOUT="${OLLAMA_START_TIMEOUT:-60}"

has_model() {
    # `ollama list` is GET /api/tags; names may carry an implicit ":latest".
    ollama list 2>/dev/null | awk 'NR > 1 { print $1 }' \
        | grep -Fxq -e "$MODEL" -e "$MODEL:latest"
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

ensure_model() {
    if has_model; then
        echo "model $MODEL present"
    else
        echo "pulling $MODEL"
        ollama pull "$MODEL"
    fi
}

case "${1:-serve}" in
    healthcheck)
        has_model
        ;;
    pull)
        ollama serve &
        server=$!
        wait_for_server "$server"
        ensure_model
        kill -TERM "$server"
        wait "$server" || true
        ;;
    serve)
        ollama serve &
        server=$!
        trap 'kill -TERM "$server" 2>/dev/null' TERM INT
        wait_for_server "$server"
        ensure_model || echo "pull of $MODEL failed: not healthy until it is present" >&2
        wait "$server"
        ;;
    *)
        exec ollama "$@"
        ;;
esac
