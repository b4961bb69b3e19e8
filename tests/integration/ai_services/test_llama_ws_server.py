"""The legacy Llama WebSocket server with a real GGUF (SmolLM2, fast)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


async def ask(ws, request: dict) -> list[dict]:
    """All replies to one request, up to `done` or `error`."""
    await ws.send(json.dumps(request))
    replies = []
    while True:
        reply = json.loads(await ws.recv())
        replies.append(reply)
        if reply.get("done") or "error" in reply:
            return replies


async def test_messages_request_streams_chunks_then_done(llama_ws_server):
    async with websockets.connect(f"{llama_ws_server.ws}/") as ws:
        replies = await ask(
            ws,
            {
                "messages": QUESTION,
                "temperature": 0.2,
                "max_tokens": 20,
                "stream": True,
            },
        )
    assert replies[-1] == {"done": True}
    chunks = replies[:-1]
    assert len(chunks) >= 2 and all(set(r) == {"chunk"} for r in chunks)
    assert "".join(r["chunk"] for r in chunks).strip()


async def test_legacy_prompt_and_rag_context(llama_ws_server):
    async with websockets.connect(f"{llama_ws_server.ws}/") as ws:
        replies = await ask(
            ws,
            {
                "prompt": "When does the shop open?",
                "system_prompt": "You answer briefly.",
                "rag_context": "The shop opens at 9 am.",
                "max_tokens": 16,
                "call_id": "c-9",
            },
        )
    assert replies[0] == {"rag_context": "The shop opens at 9 am.", "context_length": 23}
    assert replies[-1] == {"done": True} and len(replies) >= 3


async def test_stream_false_sends_one_chunk(llama_ws_server):
    async with websockets.connect(f"{llama_ws_server.ws}/") as ws:
        replies = await ask(ws, {"messages": QUESTION, "max_tokens": 12, "stream": False})
    assert len(replies) == 2 and replies[0]["chunk"].strip() and replies[1] == {"done": True}


async def test_requests_on_one_connection_are_serialized_without_cancel(llama_ws_server):
    """A second request sent mid-answer is served after the first one's `done`."""
    async with websockets.connect(f"{llama_ws_server.ws}/") as ws:
        await ws.send(json.dumps({"messages": QUESTION, "max_tokens": 30, "temperature": 0}))
        first = json.loads(await ws.recv())
        assert "chunk" in first
        await ws.send(json.dumps({"prompt": "Say yes.", "max_tokens": 4}))
        replies = [first]
        while len([r for r in replies if r.get("done")]) < 2:
            replies.append(json.loads(await ws.recv()))
    first_done = replies.index({"done": True})
    assert first_done < len(replies) - 1  # the first answer finished before the second started
    assert replies[-1] == {"done": True}
    assert all("chunk" in r for r in replies[first_done + 1 : -1])


async def test_seeded_greedy_answers_repeat(llama_ws_server):
    request = {"messages": QUESTION, "max_tokens": 16, "temperature": 0, "seed": 3}
    async with (
        websockets.connect(f"{llama_ws_server.ws}/") as a,
        websockets.connect(f"{llama_ws_server.ws}/") as b,
    ):
        ra, rb = await asyncio.gather(ask(a, request), ask(b, request))
    assert ra == rb


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ("{not json", "JSON"),
        ("[1]", "object"),
        (json.dumps({"temperature": 0.2}), "messages"),
        (json.dumps({"messages": []}), "empty"),
        (json.dumps({"messages": [{"role": "robot", "content": "x"}]}), "role"),
        (json.dumps({"prompt": "hi", "max_tokens": "many"}), "max_tokens"),
        (json.dumps({"prompt": "hi", "rag_context": 5}), "rag_context"),
        (b"\x00", "binary"),
    ],
)
async def test_errors_keep_the_connection_open(llama_ws_server, frame, fragment):
    async with websockets.connect(f"{llama_ws_server.ws}/") as ws:
        await ws.send(frame)
        err = json.loads(await ws.recv())
        assert set(err) == {"error"} and fragment in err["error"]
        replies = await ask(ws, {"prompt": "Say hi.", "max_tokens": 4})
    assert replies[-1] == {"done": True}
