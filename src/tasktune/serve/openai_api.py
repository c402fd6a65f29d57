"""An OpenAI-style `POST /v1/completions`, so existing clients (the `openai` package among them) call
tasks unchanged: `model` names the task, `prompt` (a string or a list of strings) fills its one
input field, and each completion's text is the task's answer: a classification task's label, a
generation task's output (greedy, at most `max_tokens` tokens, default 64). Decoding is
deterministic: sampling settings (temperature, top_p, ...) are accepted and have no effect;
what cannot be honoured (n > 1, streaming, echo, logprobs, token-id prompts) is refused with
OpenAI's error shape. Requests go through the same admission, queue, batching and deadlines as
/predict (serve/app.py).
"""

from __future__ import annotations

import time
import uuid

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictStr

from tasktune import TasktuneError
from tasktune.serve.limits import Refused

MAX_TOKENS = 1024


class CompletionRequest(BaseModel):
    model: StrictStr
    prompt: StrictStr | list[StrictStr]
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    n: int = 1
    stream: bool = False
    echo: bool = False
    logprobs: int | None = None


def error(status: int, message: str, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 401:
        kind = "authentication_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}},
                        status_code=status, headers=headers)


def unsupported(req: CompletionRequest) -> tuple[str, str] | None:
    if req.n != 1:
        return "n", "n must be 1: tasks answer deterministically"
    if req.stream:
        return "stream", "streaming is not supported"
    if req.echo:
        return "echo", "echo is not supported"
    if req.logprobs is not None:
        return "logprobs", "logprobs is not supported (POST /predict returns label probabilities)"
    return None


def add_completions(app, server, dependencies) -> None:
    @app.post("/v1/completions", dependencies=dependencies)
    async def completions(req: CompletionRequest, request: Request):
        t0 = time.perf_counter()
        bad = unsupported(req)
        if bad is not None:
            server.metrics.request(400, time.perf_counter() - t0)
            return error(400, bad[1], bad[0])
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        try:
            preds = await server.submit(req.model, prompts, request.is_disconnected,
                                        max_new_tokens=req.max_tokens or 64)
        except Refused as e:
            server.metrics.request(e.status, time.perf_counter() - t0)
            status = 404 if e.status == 400 and str(e).startswith("unknown task") else e.status
            return error(status, str(e), "model" if status == 404 else None, e.headers)
        except TasktuneError as e:
            server.metrics.request(400, time.perf_counter() - t0)
            return error(400, str(e))
        server.metrics.request(200, time.perf_counter() - t0)
        tokenizer = server.registry.backbone.tokenizer

        def count(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False).input_ids)

        texts = [p["output"] if "output" in p else p["label"] for p in preds]
        prompt_tokens = sum(count(p) for p in prompts)
        completion_tokens = sum(count(t) for t in texts)
        return {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time()),
                "model": req.model,
                "choices": [{"index": i, "text": t, "logprobs": None, "finish_reason": "stop"}
                            for i, t in enumerate(texts)],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}
