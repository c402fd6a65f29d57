from tasktune.runtime.mixed import ensemble_predict, mixed_scores

__all__ = ["ensemble_predict", "mixed_scores"]
