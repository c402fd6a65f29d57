"""Serving at run time: tasks loaded from a task root with an LRU bound, ensembles over HTTP, and the
OpenAI-style /v1/completions called with the official `openai` client."""

import os

import pytest
from fastapi.testclient import TestClient

from tasktune.artifact import save_task
from tasktune.build import build_task
from tasktune.data.readers import Example
from tasktune.methods import PrefixTuningConfig, PromptTuningConfig, ZeroShotConfig
from tasktune.runtime import ensemble_predict
from tasktune.serve import TaskServer, create_app
from tasktune.serve.limits import ServeLimits

from conftest import tiny_backbone

T = "review : {text} sentiment :{answer}"
LABELS = ["positive", "negative"]


def prompt_task(bb, seed, labels=LABELS):
    return build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=2), T, labels, seed=seed)


@pytest.fixture
def root(tmp_path):
    bb = tiny_backbone("llama")
    pinned = tmp_path / "pinned"
    save_task(prompt_task(bb, 0), pinned)
    root = tmp_path / "root"
    for i, name in enumerate(["a", "b", "c"]):
        save_task(prompt_task(bb, i + 1), root / name)
    save_task(build_task(tiny_backbone("gpt2"), "prompt-tuning", PromptTuningConfig(prompt_length=2), T, LABELS),
              root / "other-model")
    outside = tmp_path / "outside"
    save_task(prompt_task(bb, 9), outside)
    os.symlink(outside, root / "escape")
    return bb, pinned, root


def test_task_root_loads_on_demand_evicts_lru_and_refuses_what_it_should(root):
    bb, pinned, folder = root
    server = TaskServer([pinned], backbone=bb, max_wait_ms=1, task_root=folder, limits=ServeLimits(max_tasks=3))
    with TestClient(create_app(server)) as client:
        def held():
            return {t["name"] for t in client.get("/tasks").json()}

        assert held() == {"pinned"}
        r = client.post("/predict", json={"task": "a", "inputs": ["a lovely film"]})  # loaded by the request
        assert r.status_code == 200 and r.json()["predictions"][0]["label"] in LABELS
        assert client.post("/tasks/b").status_code == 200 and held() == {"pinned", "a", "b"}
        client.post("/predict", json={"task": "a", "inputs": ["a dull film"]})  # a is now more recent than b
        assert client.post("/tasks/c").json()["name"] == "c"
        assert held() == {"pinned", "a", "c"}  # b, least recently used, went; the pinned task stays
        assert server.registry.evictions == 1
        # the same predictions as the task loaded directly
        direct = prompt_task(bb, 3).predict([Example({"text": "a dull film"})])[0].label
        assert client.post("/predict", json={"task": "c", "inputs": ["a dull film"]}).json()[
            "predictions"][0]["label"] == direct

        for url in ("/tasks/..", "/tasks/%2E%2E", "/tasks/..%2Foutside", "/tasks/%2Fetc"):
            r = client.post(url)  # normalised away by the client or the router, or refused by name
            assert r.status_code in (400, 404) and "pinned" not in r.text, (url, r.text)
        cases = [("post", "/tasks/.hidden", 400, "one path component"),
                 ("post", "/tasks/escape", 403, "outside the task root"), ("post", "/tasks/nope", 404, "no task"),
                 ("post", "/tasks/other-model", 422, "fingerprint"), ("delete", "/tasks/pinned", 409, "command line"),
                 ("delete", "/tasks/b", 404, "not loaded")]
        for verb, url, status, needle in cases:
            r = getattr(client, verb)(url)
            assert r.status_code == status and needle in r.json()["detail"], (url, r.text)
        r = client.post("/predict", json={"task": "../outside", "inputs": ["x"]})
        assert r.status_code == 400 and "path component" in r.json()["detail"]
        assert held() == {"pinned", "a", "c"}  # no refusal loaded or evicted anything
        assert client.delete("/tasks/c").status_code == 200 and held() == {"pinned", "a"}


def test_full_of_pinned_tasks_refuses_to_load(root):
    bb, pinned, folder = root
    server = TaskServer([pinned], backbone=bb, max_wait_ms=1, task_root=folder, limits=ServeLimits(max_tasks=1))
    with TestClient(create_app(server)) as client:
        r = client.post("/tasks/a")
        assert r.status_code == 409 and "pinned or busy" in r.json()["detail"]
        assert len(server.registry) == 1


def test_busy_task_is_neither_evicted_nor_unloaded(root):
    bb, pinned, folder = root
    server = TaskServer([], backbone=bb, task_root=folder, limits=ServeLimits(max_tasks=1))
    server.registry.load("a")
    server.registry.acquire("a")  # an input of task a is queued
    from tasktune.serve.limits import Refused

    with pytest.raises(Refused, match="pinned or busy"):
        server.registry.load("b")
    with pytest.raises(Refused, match="in flight"):
        server.registry.unload("a")
    server.registry.release("a")
    server.registry.load("b")
    assert [n for n, _ in server.registry.items()] == ["b"]


def test_ensemble_over_http(tmp_path):
    bb = tiny_backbone("llama")
    tasks = [prompt_task(bb, s) for s in range(3)]
    for i, t in enumerate(tasks):
        save_task(t, tmp_path / f"m{i}")
    save_task(build_task(bb, "prefix-tuning", PrefixTuningConfig(prefix_length=2, reparam_hidden=8), T, LABELS),
              tmp_path / "prefix")
    save_task(build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=2), T, LABELS,
                         verbalizer={"positive": "very good", "negative": "very bad"}), tmp_path / "multi")
    save_task(prompt_task(bb, 5, ["good", "bad"]), tmp_path / "other-labels")
    server = TaskServer([tmp_path / n for n in ("m0", "m1", "m2", "prefix", "multi", "other-labels")], backbone=bb,
                        max_wait_ms=1)
    texts = ["a lovely film", "a dull film", "really fun acting"]
    expected = ensemble_predict(tasks, [Example({"text": x}) for x in texts])
    with TestClient(create_app(server)) as client:
        r = client.post("/predict", json={"task": ["m0", "m1", "m2"], "ensemble": True, "inputs": texts})
        assert r.status_code == 200
        got = r.json()["predictions"]
        assert [p["label"] for p in got] == [e["label"] for e in expected]
        assert [p["members"] for p in got] == [e["members"] for e in expected]
        assert all(sum(p["votes"].values()) == 3 for p in got)
        mixed = client.post("/predict", json={"task": ["m0", "prefix"], "ensemble": True, "inputs": texts})
        assert mixed.status_code == 200  # a prefix task is a member like any other (causal LM)
        for body, needle in [({"task": ["m0", "m1"], "inputs": ["x"]}, 'add "ensemble": true'),
                             ({"task": "m0", "ensemble": True, "inputs": ["x"]}, "needs a list"),
                             ({"task": ["m0", "multi"], "ensemble": True, "inputs": ["x"]}, "cannot be an ensemble"),
                             ({"task": ["m0", "other-labels"], "ensemble": True, "inputs": ["x"]}, "other fields"),
                             ({"task": ["m0", "m0"], "ensemble": True, "inputs": ["x"]}, "different tasks")]:
            r = client.post("/predict", json=body)
            assert r.status_code == 422 and needle in r.json()["detail"], (body, r.text)


def test_openai_client_calls_classification_and_generation_tasks(tmp_path):
    openai = pytest.importorskip("openai")
    bb = tiny_backbone("gpt2")
    save_task(prompt_task(bb, 0), tmp_path / "sentiment")
    gen = build_task(bb, "zero-shot", ZeroShotConfig(), "table : {table} text :{answer}", None, objective="generation")
    save_task(gen, tmp_path / "describe")
    server = TaskServer([tmp_path / "sentiment", tmp_path / "describe"], backbone=bb, max_wait_ms=1,
                        limits=ServeLimits(api_key="secret"))
    with TestClient(create_app(server)) as http:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="secret", http_client=http, max_retries=0)
        out = client.completions.create(model="sentiment", prompt=["a lovely film", "a dull film"])
        labels = [c.text for c in out.choices]
        direct = [p.label for p in prompt_task(bb, 0).predict([Example({"text": "a lovely film"}),
                                                                Example({"text": "a dull film"})])]
        assert labels == direct and out.object == "text_completion" and out.usage.prompt_tokens == 6
        one = client.completions.create(model="describe", prompt="name paris area city", max_tokens=4)
        expected = gen.predict([Example({"table": "name paris area city"})], beams=1, max_new_tokens=4)[0].output
        assert one.choices[0].text == expected and one.choices[0].finish_reason == "stop"
        with pytest.raises(openai.NotFoundError, match="unknown task"):
            client.completions.create(model="nope", prompt="x")
        with pytest.raises(openai.BadRequestError, match="n must be 1"):
            client.completions.create(model="sentiment", prompt="x", n=2)
        wrong = openai.OpenAI(base_url="http://testserver/v1", api_key="wrong", http_client=http, max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.completions.create(model="sentiment", prompt="x")
