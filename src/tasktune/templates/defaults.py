"""Default templates chosen from the fields (and label names) of the data."""

from __future__ import annotations

SENTIMENT_WORDS = {"positive", "negative", "neutral", "very positive", "very negative"}

DEFAULT_TEMPLATES = {
    "sentiment": "Review: {text}\nSentiment:{answer}",
    "text": "Text: {text}\nCategory:{answer}",
    "nli": "{premise}\nQuestion: {hypothesis} True, False or Neither?\nAnswer:{answer}",
    "pair": "{sentence1}\n{sentence2}\nAnswer:{answer}",
    "question": "{passage}\nQuestion: {question}?\nAnswer:{answer}",
}


def default_template(fields: list[str], labels: list[str]) -> str:
    """A sensible starting template so a user can begin with only a data file."""
    if "premise" in fields and "hypothesis" in fields:
        return DEFAULT_TEMPLATES["nli"]
    if "passage" in fields and "question" in fields:
        return DEFAULT_TEMPLATES["question"]
    if "sentence1" in fields and "sentence2" in fields:
        return DEFAULT_TEMPLATES["pair"]
    if "text" in fields:
        sentiment = labels and set(labels) <= SENTIMENT_WORDS
        return DEFAULT_TEMPLATES["sentiment" if sentiment else "text"]
    first = fields[0] if fields else "text"
    return "Input: {" + first + "}\nAnswer:{answer}"
