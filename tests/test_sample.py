"""Tests of minitransformer.sample: prompt handling, the sampling rule, and sampling from a run."""
import numpy as np
import pytest

from minitransformer import GPTConfig, build_model
from minitransformer.analysis.sample import sample_run
from minitransformer.engine.generate import generate, start_ids
from minitransformer.training.config import TrainConfig
from minitransformer.training.loop import run

VOCAB = "\n !abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(scope="module")
def model():
    return build_model(GPTConfig(vocab_size=len(VOCAB), block_size=8, n_layer=1, n_head=2,
                                 n_embd=16), seed=0)


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "run"
    run(TrainConfig.for_model(n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=8,
                              max_iters=30, warmup_iters=3, eval_interval=0, eval_iters=1),
        out, progress=False)
    return out


def test_start_ids():
    assert start_ids(VOCAB, "ab").tolist() == [3, 4]
    assert start_ids(VOCAB, "").tolist() == [0]                 # empty prompt: a newline
    assert start_ids("xyz", "").tolist() == [0]                 # no newline: the first character
    with pytest.raises(ValueError, match=r"prompt character 'Q' \(U\+0051, position 2\)"):
        start_ids(VOCAB, "abQ")


def test_generate_is_seeded(model):
    ids = start_ids(VOCAB, "hello")
    a = generate(model, ids, 20, np.random.default_rng(3))
    b = generate(model, ids, 20, np.random.default_rng(3))
    c = generate(model, ids, 20, np.random.default_rng(4))
    assert a.shape == (20,) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() < len(VOCAB)


def test_top_k_1_is_greedy(model):
    ids = list(start_ids(VOCAB, "the cat sat"))                  # longer than block_size 8
    new = generate(model, ids, 5, np.random.default_rng(0), top_k=1)
    for t in new:
        logits = model.forward(np.array(ids[-8:])[None])[0, -1]
        assert t == int(np.argmax(logits))
        ids.append(t)


def test_low_temperature_concentrates(model):
    ids = start_ids(VOCAB, "ab")
    greedy = generate(model, ids, 1, np.random.default_rng(0), top_k=1)
    cold = [generate(model, ids, 1, np.random.default_rng(s), temperature=1e-4)[0]
            for s in range(10)]
    assert cold == [greedy[0]] * 10


@pytest.mark.parametrize("kw, match", [(dict(temperature=0.0), "temperature"),
                                       (dict(temperature=float("nan")), "temperature"),
                                       (dict(top_k=0), "top_k")])
def test_generate_rejects_bad_arguments(model, kw, match):
    with pytest.raises(ValueError, match=match):
        generate(model, [0], 3, np.random.default_rng(0), **kw)


def test_sample_run(gpt_run):
    text = sample_run(gpt_run, prompt="ROMEO:", max_new_tokens=40, seed=0)
    assert text.startswith("ROMEO:") and len(text) == 46
    assert text == sample_run(gpt_run, prompt="ROMEO:", max_new_tokens=40, seed=0)
    long_prompt = "To be, or not to be, that is the question: " * 3    # > block_size 16
    assert len(sample_run(gpt_run, prompt=long_prompt, max_new_tokens=5)) == len(long_prompt) + 5


def test_sample_run_errors(gpt_run, tmp_path):
    with pytest.raises(ValueError, match="'€'"):
        sample_run(gpt_run, prompt="a €")
    with pytest.raises(FileNotFoundError, match="run folder not found"):
        sample_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        sample_run(tmp_path / "empty")


def test_sample_needs_a_gpt_run(tmp_path):
    out = tmp_path / "vit"
    run(TrainConfig.for_model(model="vit", data="digits", patch_size=4, n_layer=1, n_head=2,
                              n_embd=16, batch_size=16, max_iters=2, warmup_iters=0,
                              eval_interval=0, eval_iters=1), out, progress=False)
    with pytest.raises(ValueError, match="is a vit run"):
        sample_run(out)
