"""Text generation with a GPT, one token at a time.

    new_ids = generate(model, start_ids(vocab, "ROMEO:"), 300, rng, temperature=0.8, top_k=None)
    for i in generate_iter(model, ids, 300, rng):      # the same, one id as soon as it is drawn

Each new token: the last block_size ids are the context, the model's logits at the last position
are divided by the temperature, all but the top_k largest are dropped (when top_k is set),
softmax gives the probabilities, and one id is drawn from them by inverse CDF with an explicit
np.random.Generator (u ~ U[0, 1), the first id whose cumulative probability exceeds u).
"""
import math

import numpy as np

from ..errors import ConfigError


def start_ids(vocab, prompt):
    """The prompt as ids. Empty prompt: a newline if the vocabulary has one (as nanoGPT), else its
    first character. A character outside the vocabulary is a ValueError naming it."""
    if prompt == "":
        prompt = "\n" if "\n" in vocab else vocab[0]
    stoi = {ch: i for i, ch in enumerate(vocab)}
    for pos, ch in enumerate(prompt):
        if ch not in stoi:
            raise ConfigError(f"prompt character {ch!r} (U+{ord(ch):04X}, position {pos}) is not "
                             f"in the run's vocabulary of {len(vocab)} characters")
    return np.array([stoi[ch] for ch in prompt], dtype=np.int64)


def generate(model, ids, max_new_tokens, rng, temperature=1.0, top_k=None):
    """ids (n,) -> (max_new_tokens,) new ids, drawn one at a time from the model."""
    check_sampling(max_new_tokens, temperature, top_k)
    return np.fromiter(generate_iter(model, ids, max_new_tokens, rng, temperature, top_k),
                       dtype=np.int64, count=max_new_tokens)


def check_sampling(max_new_tokens, temperature, top_k):
    """ConfigError for settings that cannot sample (checked before any work)."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"temperature must be positive and finite, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or int(top_k) != top_k or top_k < 1):
        raise ConfigError(f"top_k must be a positive integer, got {top_k!r}")
    if max_new_tokens < 0:
        raise ConfigError(f"max_new_tokens must be >= 0, got {max_new_tokens!r}")


def generate_iter(model, ids, max_new_tokens, rng, temperature=1.0, top_k=None):
    """Yield max_new_tokens new ids one at a time (so a caller can show each as it comes and
    keep what was made when interrupted). Settings are those of check_sampling."""
    T = model.cfg.block_size
    ids = list(np.asarray(ids, dtype=np.int64))
    for _ in range(max_new_tokens):
        ctx = np.array(ids[-T:], dtype=np.int64)[None]          # (1, <=T)
        logits = model.forward(ctx)[0, -1].astype(np.float64)   # (1, t, V) -> (V,)
        logits = logits / temperature
        if top_k is not None and top_k < len(logits):
            kth = np.partition(logits, -top_k)[-top_k]          # the k-th largest logit
            logits = np.where(logits < kth, -np.inf, logits)
        probs = np.exp(logits - logits.max())                   # softmax, unnormalized
        cdf = np.cumsum(probs)
        nxt = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
        nxt = min(nxt, len(cdf) - 1)
        ids.append(nxt)
        yield nxt
