import concurrent.futures

from fastapi.testclient import TestClient

from tasktune.artifact import save_task
from tasktune.build import build_task
from tasktune.methods import PrefixTuningConfig, PromptTuningConfig
from tasktune.serve import TaskServer, create_app

from conftest import tiny_backbone

T = "review : {text} sentiment :{answer}"


def test_server_batches_requests_of_several_tasks(tmp_path):
    bb = tiny_backbone("llama")
    save_task(build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=2), T, ["positive", "negative"]),
              tmp_path / "sentiment")
    save_task(build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=3), T, ["good", "bad"], seed=1),
              tmp_path / "quality")
    save_task(build_task(bb, "prefix-tuning", PrefixTuningConfig(prefix_length=2, reparam_hidden=8), T,
                         ["yes", "no"]), tmp_path / "prefix")
    server = TaskServer([tmp_path / "sentiment", tmp_path / "quality", tmp_path / "prefix"], backbone=bb,
                        max_wait_ms=200)
    with TestClient(create_app(server)) as client:
        assert {t["name"] for t in client.get("/tasks").json()} == {"sentiment", "quality", "prefix"}

        def call(task):
            return client.post("/predict", json={"task": task, "inputs": ["a lovely film", "a dull film"]})

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            responses = list(pool.map(call, ["sentiment", "quality", "prefix"]))
        assert all(r.status_code == 200 for r in responses)
        labels = [{p["label"] for p in r.json()["predictions"]} for r in responses]
        assert labels[0] <= {"positive", "negative"} and labels[1] <= {"good", "bad"} and labels[2] <= {"yes", "no"}
        assert client.get("/health").json()["batches_run"] < 3 + 3  # requests shared batches

        bad = client.post("/predict", json={"task": "nope", "inputs": ["x"]})
        assert bad.status_code == 400 and "unknown task" in bad.json()["detail"]


def _one_task_server(tmp_path, **limits):
    from tasktune.serve.limits import ServeLimits

    bb = tiny_backbone("llama")
    save_task(build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=2), T, ["positive", "negative"]),
              tmp_path / "sentiment")
    return TaskServer([tmp_path / "sentiment"], backbone=bb, max_wait_ms=1, limits=ServeLimits(**limits))


def test_server_refuses_what_it_should_not_compute(tmp_path):
    server = _one_task_server(tmp_path, max_body_bytes=2000, max_inputs=4, max_field_chars=50)
    with TestClient(create_app(server)) as client:
        ok = client.post("/predict", json={"task": "sentiment", "inputs": ["a lovely film"]})
        assert ok.status_code == 200
        cases = [
            ({"task": "sentiment", "inputs": ["x" * 3000]}, 413, "body over the limit"),
            ({"task": "sentiment", "inputs": ["a film"] * 5}, 422, "limit is 4"),
            ({"task": "sentiment", "inputs": ["x" * 60]}, 422, "60 characters"),
            ({"task": "sentiment", "inputs": [{"text": ["a", "list"]}]}, 422, None),
            ({"task": "sentiment", "inputs": [{"text": {"an": "object"}}]}, 422, None),
            ({"task": "sentiment", "inputs": [7]}, 422, None),
            ({"task": "sentiment", "inputs": []}, 422, "empty"),
            ({"task": "sentiment", "inputs": [{"other": "field"}]}, 400, "lacks field"),
            ({"task": ["not", "a", "name"], "inputs": ["x"]}, 422, None),
        ]
        for body, status, needle in cases:
            r = client.post("/predict", json=body)
            assert r.status_code == status, (body, r.text)
            assert needle is None or needle in r.text, (body, r.text)
        chunked = client.post("/predict", content=iter([b'{"task": "sentiment", "inputs": ["', b"y" * 3000, b'"]}']),
                              headers={"content-type": "application/json"})
        assert chunked.status_code == 413  # no Content-Length: counted while reading
        metrics = client.get("/metrics").text
        assert 'tasktune_requests_total{status="200"} 1' in metrics and "tasktune_batch_size_count 1" in metrics


def test_full_queue_and_deadline_and_dropped_work(tmp_path, monkeypatch):
    import threading
    import time

    server = _one_task_server(tmp_path, max_queue=3, request_timeout_s=0.3)
    computed = []
    gate = threading.Event()
    real = server.run_batch

    def slow(batch):
        gate.wait(5)
        computed.extend(p.example.fields["text"] for p in batch)
        return real(batch)

    monkeypatch.setattr(server, "run_batch", slow)
    with TestClient(create_app(server)) as client, concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = pool.submit(client.post, "/predict", json={"task": "sentiment", "inputs": ["held"]})
        time.sleep(0.1)  # the worker holds "held"; the next inputs wait in the queue
        late = pool.submit(client.post, "/predict", json={"task": "sentiment", "inputs": ["late 1", "late 2"]})
        time.sleep(0.05)
        full = client.post("/predict", json={"task": "sentiment", "inputs": ["a", "b"]})
        assert full.status_code == 503 and full.headers["retry-after"] == "1"
        assert first.result().status_code == 504 and late.result().status_code == 504  # deadline 0.3 s
        gate.set()
        time.sleep(0.3)
        assert "late 1" not in computed  # timed-out work was dropped, not computed
        assert "tasktune_dropped_inputs_total 2" in client.get("/metrics").text


def test_api_key(tmp_path):
    server = _one_task_server(tmp_path, api_key="s3cret")
    with TestClient(create_app(server)) as client:
        assert client.get("/health").status_code == 200  # load balancers need no key
        body = {"task": "sentiment", "inputs": ["a lovely film"]}
        assert client.post("/predict", json=body).status_code == 401
        assert client.post("/predict", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/predict", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/metrics").status_code == 401


def test_serve_command_with_limits_and_key_stops_on_sigterm(tmp_path):
    """The README's serve line as a real process: flags parse, the key is enforced, SIGTERM ends it."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from tasktune.cli.app import main  # noqa: F401  (the command under test)

    from conftest import save_tiny, toy_rows, write_jsonl

    model = save_tiny("gpt2", tmp_path / "model")
    write_jsonl(tmp_path / "d" / "train.jsonl", toy_rows(12))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-m", "tasktune.cli", "train", "--model", str(model), "--data",
                    str(tmp_path / "d"), "--output", str(tmp_path / "sst2"), "--max-steps", "2", "--batch-size", "4",
                    "--prompt-length", "2", "--dtype", "float32", "--quiet", "--template", T], check=True, env=env,
                   capture_output=True)
    import shutil

    shutil.copytree(tmp_path / "sst2", tmp_path / "runs" / "copy")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tasktune.cli", "serve", str(tmp_path / "sst2"), "--task-root",
                             str(tmp_path / "runs"), "--max-tasks", "100", "--port", str(port),
                             "--max-inputs", "64", "--api-key", "k3y"], env=env, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = {"task": "sst2", "inputs": ["a lovely film"]}
        assert httpx.post(base + "/predict", json=body).status_code == 401
        ok = httpx.post(base + "/predict", json=body, headers={"Authorization": "Bearer k3y"})
        assert ok.status_code == 200 and json.loads(ok.text)["predictions"][0]["label"] in ("positive", "negative")
        key = {"Authorization": "Bearer k3y"}
        assert httpx.post(base + "/tasks/copy", headers=key).json()["pinned"] is False  # from --task-root
        done = httpx.post(base + "/v1/completions", json={"model": "copy", "prompt": "a lovely film"}, headers=key)
        assert done.json()["choices"][0]["text"] == json.loads(ok.text)["predictions"][0]["label"]
        many = httpx.post(base + "/predict", json={"task": "sst2", "inputs": ["x"] * 65},
                          headers={"Authorization": "Bearer k3y"})
        assert many.status_code == 422
    finally:
        proc.send_signal(signal.SIGTERM)
        t0 = time.perf_counter()
        code = proc.wait(timeout=20)  # uvicorn shuts down gracefully, then re-raises the signal it caught
        assert code in (0, -signal.SIGTERM) and time.perf_counter() - t0 < 10
        assert b"Traceback" not in proc.stderr.read()
