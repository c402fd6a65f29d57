"""Experiments as data: a grid config -> cells run as ordinary training runs -> results.jsonl ->
reports, plots and generated doc sections rendered from the results alone."""
