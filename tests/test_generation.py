import pytest
import torch

from tasktune.build import build_task
from tasktune.data.readers import Example
from tasktune.methods import PrefixTuningConfig, PromptTuningConfig, ZeroShotConfig
from tasktune.train import TrainConfig, train

from conftest import tiny_backbone

TEMPLATE = "table : {table} text :{answer}"
ROWS = [("name paris area city", "paris is a lovely city"), ("name london", "london is a great city"),
        ("name paris area city", "a city that is paris")]


def examples():
    return [Example({"table": t, "text": x}, None, f"toy:{i}") for i, (t, x) in enumerate(ROWS)]


@pytest.mark.parametrize("kind", ["gpt2", "llama", "gemma3"])
@pytest.mark.parametrize("beams", [1, 3])
def test_our_decoder_matches_generate_on_a_plain_model(kind, beams):
    bb = tiny_backbone(kind)
    task = build_task(bb, "zero-shot", ZeroShotConfig(), TEMPLATE, None, objective="generation")
    ex = examples()[0]
    ids = torch.tensor([task.encoder.answer_row(ex).ids])
    ref = bb.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                            num_beams=beams, length_penalty=1.0, early_stopping=True,
                            eos_token_id=bb.tokenizer.eos_token_id, pad_token_id=bb.tokenizer.pad_token_id)
    expected = bb.tokenizer.decode(ref[0, ids.shape[1]:], skip_special_tokens=True).strip()
    assert task.generate([ex], beams=beams, max_new_tokens=6)[0] == expected


@pytest.mark.parametrize("kind", ["llama", "bart"])
@pytest.mark.parametrize("beams", [1, 3])
def test_min_new_tokens_bars_the_end_as_generate_does(kind, beams):
    """An end-of-sequence logit made dominant ends every output at once; min_new_tokens holds it off
    for exactly that many tokens, as transformers' option of the same name does."""
    bb = tiny_backbone(kind)
    eos = bb.tokenizer.eos_token_id
    bb.model.get_output_embeddings().register_forward_hook(lambda m, i, out: out.index_add(
        -1, torch.tensor([eos]), torch.full((*out.shape[:-1], 1), 30.0, dtype=out.dtype)))
    task = build_task(bb, "zero-shot", ZeroShotConfig(), TEMPLATE, None, objective="generation")
    ex = examples()[0]
    assert task.generate([ex], beams=beams, max_new_tokens=8) == [""]  # the end comes first
    ids = torch.tensor([task.encoder.answer_row(ex).ids])
    ref = bb.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, min_new_tokens=5,
                            do_sample=False, num_beams=beams, length_penalty=1.0, early_stopping=True,
                            eos_token_id=eos, pad_token_id=bb.tokenizer.pad_token_id)
    new = ref[0, ids.shape[1]:] if bb.family == "causal" else ref[0]
    special = {eos, bb.tokenizer.pad_token_id, getattr(bb.model.generation_config, "decoder_start_token_id", None)}
    tokens = [t for t in new.tolist() if t not in special]
    assert len(tokens) == 5
    got = task.generate([ex], beams=beams, max_new_tokens=8, min_new_tokens=5)[0]
    assert got == bb.tokenizer.decode(tokens, skip_special_tokens=True).strip()


@pytest.mark.parametrize("kind", ["llama", "bart"])
@pytest.mark.parametrize("method,cfg", [("prefix-tuning", PrefixTuningConfig(prefix_length=2, reparam_hidden=16)),
                                        ("prompt-tuning", PromptTuningConfig(prompt_length=2))])
def test_generation_training_lowers_target_nll_and_decodes(tmp_path, kind, method, cfg):
    bb = tiny_backbone(kind)
    task = build_task(bb, method, cfg, TEMPLATE, None, objective="generation")
    data = examples() * 4
    before = task.evaluate(data)["loss"]
    train(task, data, data, TrainConfig(max_steps=15, batch_size=4, eval_every=5, lr=3e-2), tmp_path, quiet=True)
    assert task.evaluate(data)["loss"] < before
    metrics = task.evaluate_generation(examples(), beams=2, max_new_tokens=5)
    assert metrics["n"] == 2  # two distinct tables, references grouped
    assert 0 <= metrics["bleu"] <= 100 and 0 <= metrics["rouge_l"] <= 100


def test_target_tokens_only_are_scored():
    bb = tiny_backbone("gpt2")
    task = build_task(bb, "zero-shot", ZeroShotConfig(), TEMPLATE, None, objective="generation")
    row = task.objective.encode(examples()[1])[0][0]
    target = task.objective.target_ids(examples()[1])
    assert row.targets == target and len(row.score_pos) == len(target)
    assert row.score_pos[0] == len(task.encoder.render(examples()[1])[0]) - 1


def test_webnlg_shape_lists_are_joined_or_exploded(tmp_path):
    import json

    from tasktune.data.readers import read_examples

    path = tmp_path / "w.jsonl"
    path.write_text(json.dumps({"category": "Airport", "triples": ["a | b | c", "d | e | f"],
                                "texts": ["first text", "second text"]}) + "\n")
    rows = read_examples(path, explode="texts")
    assert [r.fields["texts"] for r in rows] == ["first text", "second text"]
    assert rows[0].fields["triples"] == "a | b | c ; d | e | f"
    bb = tiny_backbone("gpt2")
    task = build_task(bb, "zero-shot", ZeroShotConfig(), "triples : {triples} text :{answer}", None,
                      objective="generation", target_field="texts")
    metrics = task.evaluate_generation(rows, beams=1, max_new_tokens=3)
    assert metrics["n"] == 1  # one source, two references


@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_encoder_decoder_prefix_decoding_matches_a_cache_free_greedy_loop(kind):
    """`generate` with the attention-level prefix (cached keys, prefix added at each call) gives the
    tokens a loop that recomputes everything at each step would pick."""
    bb = tiny_backbone(kind)
    task = build_task(bb, "prefix-tuning", PrefixTuningConfig(prefix_length=2, reparam=False), TEMPLATE, None,
                      objective="generation", seed=3)
    with torch.no_grad():
        task.module.prefix.normal_(0, 3.0)
    ex = examples()[0]
    got = task.generate([ex], beams=1, max_new_tokens=5)[0]
    inputs = task.module(bb, task.batch([ex])[0])
    dec = [bb.model.config.decoder_start_token_id]
    with torch.no_grad():
        for _ in range(5):
            nxt = int(bb.model(**inputs, decoder_input_ids=torch.tensor([dec])).logits[0, -1].argmax())
            dec.append(nxt)
            if nxt == bb.tokenizer.eos_token_id:
                break
    plain = build_task(bb, "zero-shot", ZeroShotConfig(), TEMPLATE, None, objective="generation")
    assert got == bb.tokenizer.decode(dec, skip_special_tokens=True).strip()
    assert got != plain.generate([ex], beams=1, max_new_tokens=5)[0] or got == ""  # the prefix is in play
    assert isinstance(task.generate([ex], beams=3, max_new_tokens=5)[0], str)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "gemma3"])
@pytest.mark.parametrize("method,cfg", [("zero-shot", ZeroShotConfig()),
                                        ("prompt-tuning", PromptTuningConfig(prompt_length=3)),
                                        ("prefix-tuning", PrefixTuningConfig(prefix_length=3, reparam=False))])
@pytest.mark.parametrize("beams", [1, 3])
def test_batched_decoding_equals_one_source_at_a_time(kind, method, cfg, beams):
    """Left padding, per-row positions (after a KV prefix) and per-source beams change nothing."""
    bb = tiny_backbone(kind)
    task = build_task(bb, method, cfg, TEMPLATE, None, objective="generation", seed=4)
    if method == "prefix-tuning":
        with torch.no_grad():
            task.module.prefix.normal_(0, 1.0)
    sources = [Example({"table": t}, None, f"s{i}") for i, t in
               enumerate(["name paris", "name london area city is great", "area city", "name paris area city"])]
    alone = [task.generate([ex], beams=beams, max_new_tokens=6)[0] for ex in sources]
    assert task.generate(sources, beams=beams, max_new_tokens=6) == alone


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_greedy_batch_with_a_row_that_ends_early_equals_one_source_at_a_time(kind):
    """A row that ends leaves the batch (the cache is reordered then, and only then)."""
    bb = tiny_backbone(kind)
    task = build_task(bb, "zero-shot", ZeroShotConfig(), TEMPLATE, None, objective="generation")
    first, second = examples()[0], examples()[1]
    ids = torch.tensor([task.encoder.answer_row(first).ids])
    ref = bb.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                            eos_token_id=bb.tokenizer.eos_token_id, pad_token_id=bb.tokenizer.pad_token_id)
    trigger = ref[0, ids.shape[1] + 2].item()  # the first source's third token ends it
    seen = {}
    bb.model.register_forward_pre_hook(lambda m, a, kw: seen.update(ids=kw.get("input_ids")), with_kwargs=True)

    def end_after_trigger(module, inputs, out):
        if seen.get("ids") is None:
            return out
        hit = (seen["ids"][:, -1] == trigger).to(out.dtype)[:, None] * 50.0
        return out.index_add(-1, torch.tensor([bb.tokenizer.eos_token_id]), hit[:, None].expand(*out.shape[:-1], 1))

    bb.model.get_output_embeddings().register_forward_hook(end_after_trigger)
    alone = [task.generate([ex], beams=1, max_new_tokens=8)[0] for ex in (first, second)]
    assert len(bb.tokenizer(alone[0]).input_ids) < len(bb.tokenizer(alone[1]).input_ids)  # it did end early
    assert task.generate([first, second], beams=1, max_new_tokens=8) == alone
    assert task.generate([second, first], beams=1, max_new_tokens=8) == alone[::-1]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("method,cfg", [("prompt-tuning", PromptTuningConfig(prompt_length=3)),
                                        ("prefix-tuning", PrefixTuningConfig(prefix_length=3, reparam=False))])
def test_the_head_reads_contiguous_rows_and_the_prefill_reads_the_last_position_only(kind, method, cfg):
    """A strided [rows, 1, hidden] input makes the LM head copy its weight once per row
    (pytorch/pytorch#151934): every head call of a batched decode gets contiguous rows, one
    position each, and the outputs equal the last layer run at every position (llama)."""
    from tasktune.engine.last_layer import at_read_positions, plain_last_layer, read_positions_last_layer

    bb = tiny_backbone(kind)
    assert at_read_positions(bb.model) == (kind == "llama")
    task = build_task(bb, method, cfg, TEMPLATE, None, objective="generation", seed=4)
    sources = [Example({"table": t}, None, f"s{i}") for i, t in
               enumerate(["name paris", "name london area city is great", "area city"])]
    calls = []
    hook = bb.model.get_output_embeddings().register_forward_pre_hook(
        lambda m, args: calls.append((args[0].is_contiguous(), args[0].shape[1])))
    fast = task.generate(sources, beams=2, max_new_tokens=5)
    hook.remove()
    assert calls and all(contiguous and rows == 1 for contiguous, rows in calls)
    if kind == "llama":
        assert plain_last_layer(bb.model)
        try:
            assert task.generate(sources, beams=2, max_new_tokens=5) == fast
        finally:
            assert read_positions_last_layer(bb.model)


def test_decoding_batches_sources_of_similar_length_and_returns_them_in_order(monkeypatch):
    from tasktune.engine import decode

    bb = tiny_backbone("llama")
    task = build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=3), TEMPLATE, None,
                      objective="generation", seed=4)
    tables = ["name paris area city is great and lovely", "name", "area city is great", "name paris", "city"]
    sources = [Example({"table": t}, None, f"s{i}") for i, t in enumerate(tables)]
    alone = [task.generate([ex], beams=1, max_new_tokens=4)[0] for ex in sources]
    seen, step = [], decode._generate_causal

    def recording(backbone, module, rows, *args):
        seen.append([len(r.ids) for r in rows])
        return step(backbone, module, rows, *args)

    monkeypatch.setattr(decode, "_generate_causal", recording)
    assert task.generate(sources, beams=1, max_new_tokens=4, batch_size=2) == alone
    flat = [n for batch in seen for n in batch]
    assert flat == sorted(flat) and [len(b) for b in seen] == [2, 2, 1]


def test_a_decoding_batch_holds_decode_rows_rows_by_default(monkeypatch):
    from tasktune.engine import decode

    bb = tiny_backbone("gpt2")
    task = build_task(bb, "zero-shot", ZeroShotConfig(), TEMPLATE, None, objective="generation")
    sources = [Example({"table": t}, None, f"s{i}") for i, t in enumerate(["a", "b c", "d", "e f g", "h"])]
    seen, step = [], decode._generate_causal

    def recording(backbone, module, rows, *args):
        seen.append(len(rows))
        return step(backbone, module, rows, *args)

    monkeypatch.setattr(decode, "_generate_causal", recording)
    monkeypatch.setattr(decode, "DECODE_ROWS", 4)
    task.generate(sources, beams=1, max_new_tokens=2)
    task.generate(sources, beams=2, max_new_tokens=2)
    task.generate(sources, beams=5, max_new_tokens=2)
    assert seen == [4, 1, 2, 2, 1, 1, 1, 1, 1, 1]


def test_one_top_k_over_all_sources_equals_one_a_source():
    from tasktune.engine.decode import _top_per_source

    cand = torch.randn(12, 50, generator=torch.Generator().manual_seed(0))
    cand[3, 7] = cand[3, 9] = cand[3].max() + 1  # a tie
    for groups in ([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]], [[i] for i in range(12)]):
        one_each = [(s.tolist(), i.tolist()) for s, i in (cand[g].flatten().topk(6) for g in groups)]
        assert _top_per_source(cand, groups, 3) == one_each
    uneven = [[0, 1], [2, 3, 4], [5]]  # a source with fewer rows: one top-k a source
    assert _top_per_source(cand[:6], uneven, 2) == [(s.tolist(), i.tolist()) for s, i in
                                                    (cand[g].flatten().topk(4) for g in uneven)]


@pytest.mark.parametrize("kind", ["gpt2", "llama", "gemma3"])
@pytest.mark.parametrize("beams", [1, 3])
def test_the_prefix_every_source_shares_is_run_once_and_decodes_the_same(monkeypatch, kind, beams):
    """A soft prompt and the template's opening, the same in every row, run once as a KV prefix
    of one row (left padding lies after it); the texts equal the prefill over whole rows. Not on a
    model whose sliding window (tiny Gemma 3's: 4) the rows outgrow: it would see the padding."""
    from tasktune.engine import decode

    bb = tiny_backbone(kind)
    task = build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=10), TEMPLATE, None,
                      objective="generation", seed=4)
    sources = [Example({"table": t}, None, f"s{i}") for i, t in
               enumerate(["name paris", "name london area city is great", "area city", "name paris area city"])]
    prefills = []
    bb.model.register_forward_pre_hook(
        lambda m, a, kw: prefills.append(kw) if kw.get("inputs_embeds") is not None else None, with_kwargs=True)
    shared = task.generate(sources, beams=beams, max_new_tokens=6)
    (kw,) = prefills
    rows = [task.encoder.answer_row(s) for s in sources]
    width = max(len(r.ids) for r in rows)
    common = next(i for i in range(width) if len({(r.ids[i], r.soft[i]) for r in rows}) > 1)
    assert common > 10  # the soft prompt and the template's opening
    if kind == "gemma3":
        assert kw["inputs_embeds"].shape[:2] == (4, width) and decode.CACHE not in kw
    else:
        assert kw["inputs_embeds"].shape[:2] == (4, width - common)
        assert decode.CACHE in kw and kw["attention_mask"].shape[1] == width  # the prefix's slots, then the rows'
    monkeypatch.setattr(decode, "MIN_SHARED", 10**6)
    prefills.clear()
    assert task.generate(sources, beams=beams, max_new_tokens=6) == shared
    assert prefills[0]["inputs_embeds"].shape[1] == width and decode.CACHE not in prefills[0]
