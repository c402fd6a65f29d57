"""Write the bundled demo sentiment dataset (tasktune/data/demo/{train,dev}.jsonl).

Every sentence is composed here from fragments the tasktune team wrote; no third-party
text. Deterministic: rerunning gives the same files.
"""

import json
import random
from pathlib import Path

SUBJECTS = [
    "the film", "this movie", "the new album", "the restaurant", "our hotel room", "the novel",
    "the concert", "this phone", "the museum tour", "the coffee", "the sequel", "the service",
    "the play", "this laptop", "the documentary", "the pizza", "the lecture", "the game",
]
POSITIVE = [
    "was a pure joy from start to finish", "made me smile the whole time", "is wonderful and I would go back",
    "exceeded every expectation I had", "was charming, clever and warm", "is the best I have tried this year",
    "felt fresh and beautifully made", "left me delighted", "was worth every penny",
    "is a delight I recommend to everyone", "had a lovely, generous spirit", "was brilliant in every way",
    "turned out far better than I hoped", "was moving and full of life", "is a real gem",
]
NEGATIVE = [
    "was a dull waste of time", "made me want to leave early", "is awful and I will not return",
    "fell short of every expectation", "was clumsy, boring and cold", "is the worst I have tried this year",
    "felt stale and carelessly made", "left me disappointed", "was not worth the money",
    "is a mess I would warn anyone about", "had a mean, joyless spirit", "was dreadful in every way",
    "turned out far worse than I feared", "was tedious and lifeless", "is a real letdown",
]
OPENERS = ["", "Honestly, ", "To be fair, ", "After a long week, ", "I have to say ", "In short, "]


def compose(rng: random.Random, label: str) -> str:
    phrases = POSITIVE if label == "positive" else NEGATIVE
    opener = rng.choice(OPENERS)
    subject = rng.choice(SUBJECTS)
    text = f"{opener}{subject} {rng.choice(phrases)}."
    return text[0].upper() + text[1:]


def main() -> None:
    rng = random.Random(2026)
    seen: set[str] = set()
    rows = []
    while len(rows) < 320:
        label = "positive" if len(rows) % 2 == 0 else "negative"
        text = compose(rng, label)
        if text not in seen:
            seen.add(text)
            rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    out = Path(__file__).resolve().parents[1] / "src/tasktune/data/demo"
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", rows[:240]), ("dev", rows[240:])):
        with open(out / f"{name}.jsonl", "w") as f:
            for row in part:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
