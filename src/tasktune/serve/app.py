"""HTTP server: many task artifacts on one loaded backbone, with dynamic batching.

Requests wait up to `max_wait_ms` (or until `max_batch` inputs are queued); the worker then
runs every mixable task's rows (soft prompts, P-tuning, zero-shot) in one forward pass and
the other tasks batch by batch. Replicas are stateless: each holds the backbone and every
task (they are kilobytes), so any replica serves any task.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from tasktune import TasktuneError
from tasktune.data.readers import Example
from tasktune.runtime.mixed import can_mix, mixed_scores


class PredictRequest(BaseModel):
    task: str
    inputs: list[str | dict]


@dataclass
class _Pending:
    task: str
    example: Example
    future: asyncio.Future = field(repr=False)


class TaskServer:
    def __init__(self, artifacts: list[str | Path], backbone=None, dtype: str = "auto", max_batch: int = 32,
                 max_wait_ms: float = 5.0):
        from tasktune.build import load_task

        if not artifacts:
            raise TasktuneError("serve needs at least one artifact folder")
        self.tasks = {}
        for path in artifacts:
            task, _ = load_task(path, backbone=backbone, dtype=dtype)
            backbone = task.backbone  # every later task must load onto the same weights (fingerprint checked)
            name = Path(path).name
            if name in self.tasks:
                raise TasktuneError(f"two artifacts are named '{name}'")
            self.tasks[name] = task
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.queue: asyncio.Queue[_Pending] | None = None
        self.batches_run = 0

    def example(self, task: str, value) -> Example:
        if task not in self.tasks:
            raise TasktuneError(f"unknown task '{task}': serving {sorted(self.tasks)}")
        fields = self.tasks[task].template.fields
        if isinstance(value, str):
            if len(fields) != 1:
                raise TasktuneError(f"task '{task}' needs fields {fields}, not a plain string")
            value = {fields[0]: value}
        if not isinstance(value, dict):
            raise TasktuneError("each input is a string or an object of fields")
        missing = [f for f in fields if not str(value.get(f, "")).strip()]
        if missing:
            raise TasktuneError(f"input lacks field(s) {missing} of task '{task}'")
        return Example({k: str(v) for k, v in value.items()}, None, "request")

    def run_batch(self, batch: list[_Pending]) -> list[dict]:
        """Predictions for a drained batch: mixable tasks together, the rest per task."""
        names = list(self.tasks)
        results: dict[int, dict] = {}
        mix = [i for i, p in enumerate(batch) if can_mix(self.tasks[p.task])]
        if mix:
            tasks = [self.tasks[n] for n in names]
            mixable = [t if can_mix(t) else None for t in tasks]
            order = [i for i, t in enumerate(mixable) if t is not None]
            sub = [tasks[i] for i in order]
            index = {names[i]: k for k, i in enumerate(order)}
            scores = mixed_scores(sub, [(index[batch[i].task], batch[i].example) for i in mix])
            for i, s in zip(mix, scores, strict=True):
                results[i] = self.tasks[batch[i].task].objective.predictions(s[None])[0].to_dict()
        for name in {batch[i].task for i in range(len(batch)) if i not in results}:
            idx = [i for i, p in enumerate(batch) if p.task == name and i not in results]
            preds = self.tasks[name].predict([batch[i].example for i in idx], beams=1)
            results.update({i: p.to_dict() for i, p in zip(idx, preds, strict=True)})
        self.batches_run += 1
        return [results[i] for i in range(len(batch))]

    async def worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self.queue.get()
            batch = [first]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), timeout))
                except TimeoutError:
                    break
            try:
                preds = await loop.run_in_executor(None, self.run_batch, batch)
                for p, pred in zip(batch, preds, strict=True):
                    p.future.set_result(pred)
            except Exception as e:  # noqa: BLE001 - every waiting request must hear of it
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(e)

    async def submit(self, task: str, values: list) -> list[dict]:
        loop = asyncio.get_running_loop()
        pending = [_Pending(task, self.example(task, v), loop.create_future()) for v in values]
        for p in pending:
            await self.queue.put(p)
        return list(await asyncio.gather(*(p.future for p in pending)))


def create_app(server: TaskServer):
    from fastapi import FastAPI, HTTPException

    @asynccontextmanager
    async def lifespan(app):
        server.queue = asyncio.Queue()
        job = asyncio.create_task(server.worker())
        yield
        job.cancel()

    app = FastAPI(title="tasktune", lifespan=lifespan)

    @app.get("/health")
    def health():
        return {"ok": True, "tasks": len(server.tasks), "batches_run": server.batches_run}

    @app.get("/tasks")
    def tasks():
        return [{"name": n, "method": t.method, "objective": t.objective.kind, "fields": t.template.fields,
                 "labels": list(t.verbalizer.labels) if t.verbalizer else None} for n, t in server.tasks.items()]

    @app.post("/predict")
    async def predict(req: PredictRequest):
        if not req.inputs:
            raise HTTPException(422, "inputs is empty")
        try:
            return {"task": req.task, "predictions": await server.submit(req.task, req.inputs)}
        except TasktuneError as e:
            raise HTTPException(400, str(e)) from None

    return app
