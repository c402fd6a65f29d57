"""Sections rendered from a benchmark's results file: the fastest rate per method, lower bounds named."""

from tasktune.experiments.docs import RESULT_RENDERERS, renderer_of


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


def test_time_to_accuracy_carries_the_trivial_rows_and_a_zero_shot_above_the_threshold_counts():
    base = {"threshold": 0.88, "ratio_fastest_peer_over_tasktune": None, "planned_runs": 1,
            "runs": [_run("tasktune prompt tuning", 0.03, 100.0, 150)]}
    trivial = {"zero_shot_accuracy": 0.612, "majority_baseline": 0.509, "zero_shot_seconds": 21.0, "n": 872}
    text = RESULT_RENDERERS["time_to_accuracy"]({**base, "baselines": trivial})
    assert "| zero-shot template (no training) | never (dev accuracy 0.612) | 0 | | |" in text
    assert "| most common label | never (dev accuracy 0.509) | 0 | | |" in text
    text = RESULT_RENDERERS["time_to_accuracy"]({**base, "baselines": {**trivial, "zero_shot_accuracy": 0.9}})
    assert "| zero-shot template (no training) | 21 (dev accuracy 0.900) |" in text
    assert "most common label" not in RESULT_RENDERERS["time_to_accuracy"](base)


def test_a_partial_time_to_accuracy_run_says_so():
    data = {"threshold": 0.88, "ratio_fastest_peer_over_tasktune": None, "planned_runs": 9,
            "runs": [_run("tasktune prompt tuning", 0.03, 100.0, 150)]}
    text = RESULT_RENDERERS["time_to_accuracy"](data)
    assert "Partial: 1 of 9 planned runs" in text and "sooner" not in text


def test_generation_glance_pairs_each_decoding_with_the_fixed_peer_and_names_the_broken_one():
    def row(lib, method, beams, tok_s, rss=1.0):
        return {"library": lib, "method": method, "beams": beams, "tokens_s": tok_s, "peak_rss_gb": rss}

    data = {"commit": "abc1234", "machine": "CPU X (AVX-512 BF16)",
            "rows": [row("tasktune", "prompt", 1, 120.0, 1.2), row("PEFT + generate", "prompt", 1, 100.0, 1.5),
                     row("PEFT + generate as installed (wrong outputs)", "prompt", 1, 8.0),
                     row("tasktune", "prefix", 5, 40.0), {"library": "PEFT + generate", "method": "prefix",
                                                          "beams": 5, "error": "boom"}]}
    text = RESULT_RENDERERS["generation_speed"](data)
    assert "| prompt, greedy | 120.0 | 100.0 | 1.20x | 0.80x |" in text
    assert "prefix, beam 5" not in text.split("\n\n")[0]  # no peer figure, no ratio
    assert "wrongly" in text and "prompt greedy 8.0 tokens/s" in text and "commit abc1234".lower() in text.lower()
    assert "median" not in text  # one round a row
    for r in data["rows"]:
        r["rounds"] = 3
    assert "the median of 3 rounds" in RESULT_RENDERERS["generation_speed"](data)


def test_a_benchmark_published_per_kind_of_matrix_unit_renders_with_its_benchmarks_renderer():
    assert renderer_of("speed_vs_peft_amx") is RESULT_RENDERERS["speed_vs_peft"]
    assert renderer_of("time_to_accuracy_avx512_bf16") is RESULT_RENDERERS["time_to_accuracy"]
    assert renderer_of("cost_curves") is RESULT_RENDERERS["cost_curves"]
    assert renderer_of("speed_vs_peftx") is None and renderer_of("unknown_amx") is None


def test_speed_glance_shows_the_rounds_range_only_when_the_run_had_rounds():
    data = {"ratios": {"prompt bf16 vs PEFT tuned bf16: train tok/s": 1.8,
                       "prompt bf16 vs PEFT defaults bf16: train tok/s": 2.5},
            "gemm_peak": {"bfloat16": 9.5e11}, "machine": "CPU X", "commit": "abc1234"}
    one = RESULT_RENDERERS["speed_vs_peft"](data)
    assert "| prompt bf16 vs PEFT tuned bf16: train tok/s | 1.80x |\n" in one and "range" not in one
    assert "defaults bf16: train" not in one  # the headline is PEFT tuned; defaults are second rows elsewhere
    data["ratio_rounds"] = {"prompt bf16 vs PEFT tuned bf16: train tok/s": [1.6, 2.0]}
    three = RESULT_RENDERERS["speed_vs_peft"](data)
    assert "rounds' range |" in three
    assert "| prompt bf16 vs PEFT tuned bf16: train tok/s | 1.80x | 1.60-2.00x |" in three
