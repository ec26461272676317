"""An OpenAI-compatible server that answers as vLLM 0.33.0 does, for ``moe-ep smoke`` without GPUs.

It is vLLM's own code where that runs without an engine: the API-key middleware
(``vllm serve --api-key``), the ``/v1/models`` route, and the protocol classes of a streamed chat
completion, serialized as vLLM's chat serving does (first a role chunk, then one chunk per token, the last
with its finish reason, the usage chunk when ``stream_options.include_usage``, then ``[DONE]``). Only the
tokens are canned.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from vllm.entrypoints.openai.chat_completion.protocol import (ChatCompletionResponseStreamChoice,
                                                                ChatCompletionStreamResponse)
from vllm.entrypoints.generate.base.protocol import DeltaMessage
from vllm.entrypoints.openai.models.api_router import attach_router as attach_models
from vllm.entrypoints.serve.engine.protocol import ModelCard, ModelList, UsageInfo
from vllm.entrypoints.serve.middleware.authenticate import AuthenticationMiddleware

ANSWER = ["Hello", " from", " a", " vLLM", "-shaped", " server", ".", "\n", "Second", " line", "."]


class _Models:
    """What vLLM's ``/v1/models`` route asks ``app.state.openai_serving_models`` for."""

    def __init__(self, served: str, max_model_len: int) -> None:
        self.served, self.max_model_len = served, max_model_len

    async def show_available_models(self) -> ModelList:
        return ModelList(data=[ModelCard(id=self.served, root=self.served, max_model_len=self.max_model_len)])


def app(served: str, api_key: str | None, token_delay_s: float = 0.005, prompt_tokens: int = 12) -> FastAPI:
    api = FastAPI()
    api.state.openai_serving_models = _Models(served, 4096)
    attach_models(api)
    if api_key is not None:  # as `vllm serve` without --api-key: open
        api.add_middleware(AuthenticationMiddleware, tokens=[api_key])

    @api.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        if body.get("model") != served:
            return JSONResponse({"error": {"message": f"The model `{body.get('model')}` does not exist.", "type": "NotFoundError",
                                           "param": "model", "code": 404}}, status_code=404)
        tokens = ANSWER[: body.get("max_tokens") or len(ANSWER)]
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        request_id, created = f"chatcmpl-{int(time.time() * 1e6)}", int(time.time())

        def chunk(choices, usage_info=None) -> str:
            c = ChatCompletionStreamResponse(id=request_id, object="chat.completion.chunk", created=created, model=served,
                                             choices=choices, **({} if usage_info else {"kv_transfer_params": None}))
            if usage_info is not None:
                c.usage = usage_info
            return f"data: {c.model_dump_json(exclude_unset=True, exclude_none=not c.choices)}\n\n"

        async def stream():
            yield chunk([ChatCompletionResponseStreamChoice(index=0, delta=DeltaMessage(role="assistant", content=""),
                                                            logprobs=None, finish_reason=None)])
            for n, token in enumerate(tokens, 1):
                await asyncio.sleep(token_delay_s)
                last = n == len(tokens)
                finish = {"finish_reason": "length" if len(tokens) < len(ANSWER) else "stop", "stop_reason": None} if last else {"finish_reason": None}
                yield chunk([ChatCompletionResponseStreamChoice(index=0, delta=DeltaMessage(content=token), logprobs=None,
                                                                token_ids=None, **finish)])
            if usage:
                yield chunk([], UsageInfo(prompt_tokens=prompt_tokens, completion_tokens=len(tokens),
                                          total_tokens=prompt_tokens + len(tokens)))
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return api


class Server:
    """``with Server(served, key) as url:`` serves on 127.0.0.1 in a thread until the block ends."""

    def __init__(self, served: str, api_key: str | None, **options) -> None:
        self.config = uvicorn.Config(app(served, api_key, **options), host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(self.config)
        self.socket = socket.create_server(("127.0.0.1", 0))

    def __enter__(self) -> str:
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test OpenAI server did not start")
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def __exit__(self, *_exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()
