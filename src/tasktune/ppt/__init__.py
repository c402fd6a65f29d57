"""PPT (Gu et al. 2022): pre-train a soft prompt on self-supervised tasks built from
unlabeled text, then use it to initialise few-shot prompt tuning."""
