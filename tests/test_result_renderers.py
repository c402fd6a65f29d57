"""Sections rendered from a benchmark's results file: the fastest rate per method, lower bounds named."""

from tasktune.experiments.docs import RESULT_RENDERERS


def _run(method, lr, secs, step=None, total=500.0):
    curve = [{"step": 25, "accuracy": 0.86, "seconds": 40.0 + lr}] + (
        [{"step": step, "accuracy": 0.881, "seconds": secs}] if secs else [])
    return {"method": method, "lr": lr, "seconds_to_threshold": secs, "reached_step": step, "run_seconds": total,
            "curve": curve}


def test_time_to_accuracy_shows_each_methods_fastest_rate_and_the_lower_bound_of_one_that_never_got_there():
    data = {"threshold": 0.88, "ratio_fastest_peer_over_tasktune": 2.5, "planned_runs": 5, "commit": "abc1234",
            "machine": "CPU X (AVX2), 2 threads",
            "runs": [_run("tasktune prompt tuning", 0.01, None), _run("tasktune prompt tuning", 0.03, 100.0, 150),
                     _run("tasktune prompt tuning", 0.1, 140.0, 175), _run("PEFT prompt tuning", 0.03, None, None, 900),
                     {"method": "PEFT LoRA r=8 q,v", "lr": 0.003, "error": "boom"}]}
    text = RESULT_RENDERERS["time_to_accuracy"](data)
    assert "| tasktune prompt tuning | 100 | 150 | 0.03 | 0.01, 0.03, 0.1 |" in text
    assert "| PEFT prompt tuning | never (> 900) |" in text
    assert "LoRA" not in text  # a run that failed has no time to show
    assert "| tasktune prompt tuning | 40 | 40 | 100 | 100 |" in text  # lower thresholds: the fastest rate each
    assert "| PEFT prompt tuning | 40 | 40 | never | never |" in text
    assert "**2.5x**" in text and "Partial: 5 of 5" not in text and "commit abc1234" in text


def test_a_partial_time_to_accuracy_run_says_so():
    data = {"threshold": 0.88, "ratio_fastest_peer_over_tasktune": None, "planned_runs": 9,
            "runs": [_run("tasktune prompt tuning", 0.03, 100.0, 150)]}
    text = RESULT_RENDERERS["time_to_accuracy"](data)
    assert "Partial: 1 of 9 planned runs" in text and "sooner" not in text
