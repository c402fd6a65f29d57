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
