"""Coordinate check: the standard parametrization's activations grow with width after a few Adam
steps, muP's stay flat; the slope is the log-log least-squares slope; bad widths are clear errors."""
import numpy as np
import pytest

from minitransformer import init as _init
from minitransformer.analysis.coordcheck import coordcheck, slope, format_result, model_configs

WIDTHS = (16, 32, 64)


def test_slope():
    assert slope([1, 2, 4], [3, 6, 12]) == pytest.approx(1.0)
    assert slope([8, 16, 32], [5, 5, 5]) == pytest.approx(0.0)


def test_standard_parametrization_is_not_flat():
    res = coordcheck("gpt", "gpt2", WIDTHS, steps=2)
    assert res["modules"] == ["embed.out", "h.0.out", "h.1.out", "logits"]
    assert res["widths"] == list(WIDTHS) and set(res["values"]["logits"]) == {"0", "1", "2"}
    assert not res["flat"]
    assert res["slopes"]["h.1.out"] > 0.5                  # grows about linearly with width
    assert abs(res["slopes"]["embed.out"]) < 0.25          # embeddings do not depend on width
    assert "NOT flat" in format_result(res)


def test_mup_is_flat():
    res = coordcheck("gpt", "mup", WIDTHS, steps=2)
    sp = coordcheck("gpt", "gpt2", WIDTHS, steps=2)
    assert res["flat"], res["slopes"]
    for m in ("h.0.out", "h.1.out"):
        assert abs(res["slopes"][m]) < abs(sp["slopes"][m])


def test_vit_runs():
    res = coordcheck("vit", None, (16, 32), steps=1, n_layer=1)
    assert res["init"] == "vit" and res["modules"][-1] == "logits"
    assert all(np.isfinite(v) for v in res["slopes"].values())


@pytest.mark.parametrize("widths, msg", [((32,), "at least two"), ((64, 32), "increase"),
                                         ((30, 60), "multiple of n_head")])
def test_bad_widths(widths, msg):
    with pytest.raises(ValueError, match=msg):
        model_configs("gpt", widths)


def test_bad_scheme_and_model():
    with pytest.raises(ValueError, match="unknown init"):
        coordcheck("gpt", "nope", WIDTHS)
    with pytest.raises(ValueError, match="gpt or vit"):
        coordcheck("cnn", "gpt2", WIDTHS)
