"""Generation metrics from maintained libraries: BLEU (sacrebleu, multi-reference, default
tokeniser) and ROUGE-L (rouge-score, best over references). METEOR, NIST and CIDEr are not
computed: NLTK's METEOR needs the WordNet data and pycocoevalcap needs Java, neither of which
this project installs."""

from __future__ import annotations

from tasktune import TasktuneError


def text_metrics(hypotheses: list[str], references: list[list[str]]) -> dict:
    try:
        import sacrebleu
        from rouge_score import rouge_scorer
    except ImportError:
        raise TasktuneError("generation metrics need `pip install sacrebleu rouge-score`") from None
    width = max(len(r) for r in references)
    ref_streams = [[refs[i] if i < len(refs) else refs[0] for refs in references] for i in range(width)]
    bleu = sacrebleu.corpus_bleu(hypotheses, ref_streams).score
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = sum(scorer.score_multi(refs, hyp)["rougeL"].fmeasure for hyp, refs in zip(hypotheses, references,
                                                                                         strict=True))
    return {"bleu": bleu, "rouge_l": 100 * rouge / max(1, len(hypotheses))}
