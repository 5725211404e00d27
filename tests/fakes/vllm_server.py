"""A fake vLLM OpenAI server on loopback: the endpoints VllmEngine uses, with recorded calls.

Completions are deterministic: the reply names the model (base or adapter) and this replica, and
streams word by word (each word one token, with log-probabilities when asked), or comes whole
when not streamed, so tests can tell which replica served which adapter.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse


class FakeVllm:
    def __init__(self, name: str, base_model: str):
        self.name = name
        self.base_model = base_model
        self.adapters: dict[str, str] = {}
        self.refuse_loads = False  # answer every load with an error, as vLLM does for an adapter it cannot use
        self.requests: list[dict] = []
        self.app = self._build()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))

    def start(self) -> FakeVllm:
        threading.Thread(target=self.server.run, daemon=True).start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/health")
        async def health():
            return PlainTextResponse("")

        @app.post("/v1/load_lora_adapter")
        async def load(body: dict):
            if self.refuse_loads:
                return JSONResponse({"error": {"message": "Loading lora failed"}}, status_code=400)
            if body["lora_name"] in self.adapters and not body.get("load_inplace"):
                message = f"The lora adapter '{body['lora_name']}' has already been loaded."  # vLLM's words
                return JSONResponse({"error": {"message": message}}, status_code=400)
            self.adapters[body["lora_name"]] = body["lora_path"]
            return PlainTextResponse(f"Success: LoRA adapter '{body['lora_name']}' added successfully.")

        @app.post("/v1/unload_lora_adapter")
        async def unload(body: dict):
            if self.adapters.pop(body["lora_name"], None) is None:
                return JSONResponse({"error": {"message": "not found"}}, status_code=404)
            return PlainTextResponse("Success")

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            self.requests.append(body)
            model = body["model"]
            if body["max_tokens"] > 4096:
                return JSONResponse({"error": {"message": "max_tokens is too large for this model"}}, status_code=400)
            if model != self.base_model and model not in self.adapters:
                return JSONResponse({"error": {"message": f"model {model} does not exist"}}, status_code=404)
            words = f"{model} answers from {self.name}".split()[: body["max_tokens"]]
            finish = "length" if len(words) == body["max_tokens"] else "stop"
            pieces = [(" " if i else "") + word for i, word in enumerate(words)]
            usage = {"prompt_tokens": 7, "completion_tokens": len(words)}
            if not body.get("stream"):  # as vLLM: one whole reply, the tokens' log-probabilities in one list
                if "stream_options" in body:
                    message = "Stream options can only be defined when `stream=True`."  # vLLM's words
                    return JSONResponse({"error": {"message": message}}, status_code=400)
                choice = {"index": 0, "message": {"role": "assistant", "content": "".join(pieces)}}
                choice |= {"finish_reason": finish, "logprobs": _logprobs(body, pieces)}
                return JSONResponse({"object": "chat.completion", "choices": [choice], "usage": usage})

            async def events():
                yield _sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
                for piece in pieces:
                    await asyncio.sleep(0.005)
                    choice = {"index": 0, "delta": {"content": piece}}
                    if logprobs := _logprobs(body, [piece]):
                        choice["logprobs"] = logprobs
                    yield _sse({"choices": [choice]})
                yield _sse({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
                yield _sse({"choices": [], "usage": usage})
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        return app


def _logprobs(body: dict, pieces: list[str]) -> dict | None:
    """Each word one token, with made-up log-probabilities, when the request asks for them."""
    if not body.get("logprobs"):
        return None
    top = [{"token": f"alt{k}", "logprob": -1.0 - k} for k in range(body.get("top_logprobs", 0))]
    return {"content": [{"token": piece, "logprob": -0.5, "top_logprobs": top} for piece in pieces]}


def _sse(chunk: dict) -> str:
    return f"data: {json.dumps(chunk)}\n\n"
