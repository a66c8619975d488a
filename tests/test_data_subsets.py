"""--train-limit and --classes: training on a subset of the training split, or on some labels."""
import numpy as np
import pytest

from minitransformer.errors import ConfigError, DataError
from minitransformer.training.build import resolve_data
from minitransformer.training.config import TrainConfig
from minitransformer.training.data import parse_classes


def test_parse_classes():
    assert parse_classes("0-4") == (0, 1, 2, 3, 4)
    assert parse_classes("9,5,7") == (5, 7, 9)
    for bad in ("0-10", "a", "", "3,3", "4-2", "-1"):
        with pytest.raises(ConfigError, match="classes"):
            parse_classes(bad)


def test_train_limit_takes_the_first_examples_and_keeps_validation():
    full = resolve_data(TrainConfig.for_model(model="vit", data="digits"))
    part = resolve_data(TrainConfig.for_model(model="vit", data="digits", train_limit=100))
    assert len(part.train_y) == 100 and np.array_equal(part.train_x, full.train_x[:100])
    assert np.array_equal(part.val_y, full.val_y)
    with pytest.raises(DataError, match="more than the 1437"):
        resolve_data(TrainConfig.for_model(model="vit", data="digits", train_limit=1438))


def test_classes_filter_both_splits_then_limit():
    full = resolve_data(TrainConfig.for_model(model="vit", data="digits"))
    ds = resolve_data(TrainConfig.for_model(model="vit", data="digits", classes="5-9",
                                            train_limit=50))
    assert set(ds.train_y) <= {5, 6, 7, 8, 9} and set(ds.val_y) == {5, 6, 7, 8, 9}
    assert len(ds.train_y) == 50 and ds.n_classes == 10
    assert np.array_equal(ds.train_y, full.train_y[full.train_y >= 5][:50])
    assert len(ds.val_y) == int((full.val_y >= 5).sum())


def test_text_train_limit_and_bad_settings():
    ds = resolve_data(TrainConfig.for_model(max_iters=1, train_limit=1000))
    assert len(ds.train) == 1000 and len(ds.val) > 100000
    with pytest.raises(ConfigError, match="needs --model vit"):
        TrainConfig.for_model(classes="0-4")
    with pytest.raises(ConfigError, match="train_limit"):
        TrainConfig.for_model(model="vit", train_limit=0)
