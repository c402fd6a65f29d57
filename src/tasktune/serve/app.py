"""HTTP server: many task artifacts on one loaded backbone, with dynamic batching.

It admits before it computes (serve/limits.py): body size, inputs per request and characters per
field are checked first, string values only, a bounded queue answers 503 with Retry-After when
full, every request has a deadline, and the queued work of a request that timed out or whose
client went away is dropped, not computed. On shutdown it stops admitting, lets the queue drain
for a few seconds and fails what is left with 503.

Requests wait up to `max_wait_ms` (or until `max_batch` inputs are queued); the worker then
runs every mixable task's rows (soft prompts, P-tuning, prefixes on causal LMs, zero-shot) in
one forward pass, the generation tasks' rows decoded together (greedy), each ensemble's members in
one pass, and the other tasks batch by batch. Tasks live in
serve/registry.py: pinned (named on the command line) or loaded from a task root under an LRU
bound; queued work holds its Task objects, so unloading never breaks a request in flight.
OpenAI-style completions (serve/openai_api.py) go through the same admission and queue.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, StrictStr

from tasktune import TasktuneError
from tasktune.data.readers import Example
from tasktune.runtime.mixed import can_mix, can_mix_generation, ensemble_predict, mixed_generate, mixed_scores
from tasktune.serve.body_limit import BodyLimit
from tasktune.serve.limits import SHUTDOWN_GRACE_S, Refused, ServeLimits, ServerMetrics
from tasktune.serve.openai_api import add_completions
from tasktune.serve.registry import TaskRegistry
from tasktune.serve.work_queue import WorkQueue, _Pending


class PredictRequest(BaseModel):
    task: StrictStr | list[StrictStr]
    inputs: list[StrictStr | dict[StrictStr, StrictStr]]
    ensemble: bool = False


class TaskServer:
    def __init__(self, artifacts: list[str | Path], backbone=None, dtype: str = "auto", max_batch: int = 32,
                 max_wait_ms: float = 5.0, limits: ServeLimits | None = None, task_root: str | Path | None = None,
                 model: str | None = None):
        from tasktune.backbone import load_backbone
        from tasktune.build import load_task

        if not artifacts and task_root is None:
            raise TasktuneError("serve needs at least one artifact folder or a --task-root")
        self.limits = limits or ServeLimits()
        if backbone is None and (model or not artifacts):
            backbone = load_backbone(model or _root_base_model(Path(task_root)), dtype=dtype)
        self.registry = TaskRegistry(backbone, task_root, self.limits.max_tasks)
        for path in artifacts:
            task, _ = load_task(path, backbone=self.registry.backbone, dtype=dtype)
            self.registry.pin(Path(path).name, task)  # later tasks load onto the same weights (fingerprint checked)
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.metrics = ServerMetrics()
        self.queue: WorkQueue | None = None
        self.closing = False
        self.batches_run = 0

    @property
    def tasks(self) -> dict:
        return dict(self.registry.items())

    async def task(self, name: str):
        """The task `name`: held, or loaded from the task root (off the event loop)."""
        task = self.registry.get(name)
        if task is not None:
            return task
        if not self.registry.loadable(name):
            if self.registry.root is None:
                raise Refused(400, f"unknown task '{name}': serving {sorted(self.tasks)}")
            self.registry.folder(name)  # raises the reason (bad name, outside the root, missing)
        return await asyncio.get_running_loop().run_in_executor(None, self.registry.load, name)

    def example(self, name: str, task, value) -> Example:
        fields = task.template.fields
        if isinstance(value, str):
            if len(fields) != 1:
                raise Refused(400, f"task '{name}' needs fields {fields}, not a plain string")
            value = {fields[0]: value}
        missing = [f for f in fields if not value.get(f, "").strip()]
        if missing:
            raise Refused(400, f"input lacks field(s) {missing} of task '{name}'")
        longest = max(len(v) for v in value.values())
        if longest > self.limits.max_field_chars:
            raise Refused(422, f"an input field has {longest} characters; the limit is {self.limits.max_field_chars}")
        return Example(dict(value), None, "request")

    def run_batch(self, batch: list[_Pending]) -> list[dict]:
        """Predictions for a drained batch: every mixable single task's rows in one forward pass, the
        mixable generation tasks' rows decoded together, each ensemble's members in one pass, the
        rest per task."""
        results: dict[int, dict] = {}
        mix = [i for i, p in enumerate(batch) if len(p.tasks) == 1 and can_mix(p.tasks[0])]
        if len({id(batch[i].tasks[0]) for i in mix}) == 1:
            mix = []  # one task: its own path, which runs the prompt shared by its rows once (faster)
        if mix:
            scores = mixed_scores(*_task_items(batch, mix))
            for i, s in zip(mix, scores, strict=True):
                results[i] = batch[i].tasks[0].objective.predictions(s[None])[0].to_dict()
        decoding: dict[int, list[int]] = {}  # max_new_tokens -> inputs of mixable generation tasks
        for i, p in enumerate(batch):
            if len(p.tasks) == 1 and can_mix_generation(p.tasks[0]):
                decoding.setdefault(p.max_new_tokens, []).append(i)
        for max_new, idx in decoding.items():
            texts = mixed_generate(*_task_items(batch, idx), beams=1, max_new_tokens=max_new)
            results.update({i: {"output": t} for i, t in zip(idx, texts, strict=True)})
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(batch):
            if i not in results:
                groups.setdefault((p.names, len(p.tasks) > 1, p.max_new_tokens), []).append(i)
        for (_, ensemble, max_new), idx in groups.items():
            tasks = batch[idx[0]].tasks
            examples = [batch[i].example for i in idx]
            if ensemble:
                votes = ensemble_predict(tasks, examples)
                preds = [{**v, "score": max(v["votes"].values()) / len(tasks)} for v in votes]
            else:
                preds = [p.to_dict() for p in tasks[0].predict(examples, beams=1, max_new_tokens=max_new)]
            results.update(zip(idx, preds, strict=True))
        self.batches_run += 1
        self.metrics.batch(len(batch))
        return [results[i] for i in range(len(batch))]

    @property
    def queued(self) -> int:
        return self.queue.live if self.queue is not None else 0

    async def worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.queue.ready.wait()
            await asyncio.sleep(self.max_wait)  # let company arrive
            live, dropped = self.queue.take(self.max_batch)  # timed out or abandoned: dropped, not computed
            self.metrics.dropped += dropped
            if not live:
                continue
            try:
                preds = await loop.run_in_executor(None, self.run_batch, live)
                for p, pred in zip(live, preds, strict=True):
                    if not p.future.done():
                        p.future.set_result(pred)
            except Exception as e:  # noqa: BLE001 - every waiting request must hear of it
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(e)

    async def resolve(self, task: str | list[str], ensemble: bool) -> tuple[tuple[str, ...], tuple]:
        """(names, tasks) of a request: one task, or an ensemble's members (same fields and labels)."""
        if isinstance(task, str):
            if ensemble:
                raise Refused(422, '"ensemble": true needs a list of tasks')
            return (task,), (await self.task(task),)
        if not ensemble:
            raise Refused(422, 'a list of tasks is an ensemble: add "ensemble": true')
        if not 2 <= len(task) <= 32 or len(set(task)) != len(task):
            raise Refused(422, "an ensemble names 2 to 32 different tasks")
        tasks = tuple([await self.task(n) for n in task])
        first = tasks[0]
        for name, t in zip(task, tasks, strict=True):
            if not can_mix(t):
                raise Refused(422, f"task '{name}' ({t.method}) cannot be an ensemble member: members are soft-prompt, "
                                   "prefix (causal LM) or zero-shot classifiers with one-token label words")
            if t.template.fields != first.template.fields or t.verbalizer.labels != first.verbalizer.labels:
                raise Refused(422, f"task '{name}' has other fields or labels than '{task[0]}'")
        return tuple(task), tasks

    async def admit(self, task: str | list[str], values: list, ensemble: bool = False,
                    max_new_tokens: int = 64) -> list[_Pending]:
        """Check a request against the limits and queue it, or raise Refused (nothing queued)."""
        if self.closing:
            raise Refused(503, "the server is shutting down", {"Retry-After": "5"})
        if not values:
            raise Refused(422, "inputs is empty")
        if len(values) > self.limits.max_inputs:
            raise Refused(422, f"{len(values)} inputs in one request; the limit is {self.limits.max_inputs}")
        names, tasks = await self.resolve(task, ensemble)
        examples = [self.example(names[0], tasks[0], v) for v in values]
        if self.queued + len(examples) > self.limits.max_queue:
            raise Refused(503, f"the queue is full ({self.queued} inputs waiting); retry shortly", {"Retry-After": "1"})
        loop = asyncio.get_running_loop()
        pending = [_Pending(names, tasks, ex, loop.create_future(), max_new_tokens) for ex in examples]
        for p in pending:  # busy until answered or dropped: never evicted or unloaded while queued
            for n in names:
                self.registry.acquire(n)
            p.future.add_done_callback(lambda _f, names=names: [self.registry.release(n) for n in names])
        self.queue.put(pending)
        return pending

    async def submit(self, task: str | list[str], values: list, disconnected=None, ensemble: bool = False,
                     max_new_tokens: int = 64) -> list[dict]:
        """Predictions of one request; its unfinished work is dropped past the deadline or when
        `disconnected()` (an awaitable check of the client) turns true."""
        pending = await self.admit(task, values, ensemble, max_new_tokens)
        gathered = asyncio.ensure_future(asyncio.gather(*(p.future for p in pending)))
        gathered.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no "never retrieved"
        deadline = asyncio.get_running_loop().time() + self.limits.request_timeout_s
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise Refused(504, f"no answer within {self.limits.request_timeout_s} s")
                done, _ = await asyncio.wait({gathered}, timeout=min(left, 0.25))
                if done:
                    return gathered.result()
                if disconnected is not None and await disconnected():
                    raise Refused(499, "client went away")
        finally:
            for p in pending:
                self.queue.abandon(p)
            if not gathered.done():
                gathered.cancel()

    async def shutdown(self) -> None:
        """Stop admitting; give queued work a few seconds, then fail what is left."""
        self.closing = True
        loop = asyncio.get_running_loop()
        end = loop.time() + SHUTDOWN_GRACE_S
        while self.queued and loop.time() < end:
            await asyncio.sleep(0.05)
        left, _ = self.queue.take(len(self.queue.items))
        for p in left:
            p.future.set_exception(Refused(503, "the server shut down", {"Retry-After": "5"}))


def _task_items(batch: list[_Pending], idx: list[int]) -> tuple[list, list[tuple[int, Example]]]:
    """(distinct tasks, (task index, example) per input) of single-task inputs `idx`, for runtime/mixed.py."""
    tasks = list({id(batch[i].tasks[0]): batch[i].tasks[0] for i in idx}.values())
    index = {id(t): k for k, t in enumerate(tasks)}
    return tasks, [(index[id(batch[i].tasks[0])], batch[i].example) for i in idx]


def _root_base_model(root: Path) -> str:
    """The base model of the first artifact in a task root (a server with no pinned task)."""
    for meta in sorted(root.glob("*/tasktune.json")):
        try:
            return json.loads(meta.read_text())["base_model"]["name"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
    raise TasktuneError(f"--task-root {root}: holds no artifact to take the base model from; pass --model")


def create_app(server: TaskServer) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app):
        server.queue = WorkQueue()
        server.closing = False
        job = asyncio.create_task(server.worker())
        yield
        await server.shutdown()
        job.cancel()

    def authorised(request: Request) -> None:
        key = server.limits.api_key
        if not key:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            raise HTTPException(401, "missing or wrong API key (Authorization: Bearer KEY)",
                                headers={"WWW-Authenticate": "Bearer"})

    app = FastAPI(title="tasktune", lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=server.limits.max_body_bytes)
    guarded = [Depends(authorised)]

    @app.get("/health")
    def health():
        return {"ok": not server.closing, "tasks": len(server.registry), "batches_run": server.batches_run,
                "queued": server.queued}

    @app.get("/metrics", dependencies=guarded)
    def metrics():
        return PlainTextResponse(server.metrics.render(server.queued, len(server.registry)))

    def listing(name: str, t) -> dict:
        return {"name": name, "method": t.method, "objective": t.objective.kind, "fields": t.template.fields,
                "labels": list(t.verbalizer.labels) if t.verbalizer else None,
                "pinned": name in server.registry.pinned}

    async def answer(work):
        """Run `work()`, counting the request; a refusal becomes its HTTP status and message."""
        t0 = time.perf_counter()
        try:
            out = await work()
            server.metrics.request(200, time.perf_counter() - t0)
            return out
        except Refused as e:
            server.metrics.request(e.status, time.perf_counter() - t0)
            return JSONResponse({"detail": str(e)}, status_code=e.status, headers=e.headers)
        except TasktuneError as e:
            server.metrics.request(400, time.perf_counter() - t0)
            return JSONResponse({"detail": str(e)}, status_code=400)

    @app.get("/tasks", dependencies=guarded)
    def tasks():
        return [listing(n, t) for n, t in server.registry.items()]

    @app.post("/tasks/{name}", dependencies=guarded)
    async def load(name: str):
        async def work():
            task = await server.task(name)
            return listing(name, task)
        return await answer(work)

    @app.delete("/tasks/{name}", dependencies=guarded)
    async def unload(name: str):
        async def work():
            server.registry.unload(name)
            return {"unloaded": name, "tasks": len(server.registry)}
        return await answer(work)

    @app.post("/predict", dependencies=guarded)
    async def predict(req: PredictRequest, request: Request):
        async def work():
            preds = await server.submit(req.task, req.inputs, request.is_disconnected, req.ensemble)
            return {"task": req.task, "predictions": preds}
        return await answer(work)

    add_completions(app, server, guarded)
    return app
