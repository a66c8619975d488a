"""timm ViT interop against fixtures made by the real `timm` library (scripts/make_timm_fixture.py):
logits before and after export/import, at another resolution and channel count, position
resampling, and refusals of what the ViT cannot express."""
import json
from pathlib import Path
import shutil

import numpy as np
import pytest

pytest.importorskip("safetensors")          # the hf extra (installed by the test extra)

from minitransformer import ViTConfig, build_model
from minitransformer.cli import main
from minitransformer.analysis.timm_vit import (load_timm, import_vit, export_vit, adapt,
                                               resample_positions, resize_weights, config_from_timm)
from minitransformer.analysis.tensorfile import read_safetensors, write_safetensors
from minitransformer.training.checkpoint import load_run

FIXTURES = Path(__file__).parent / "fixtures"
TINY, GAP = FIXTURES / "timm_vit_tiny", FIXTURES / "timm_vit_tiny_gap"
ATOL = 1e-5                                  # float32: the logits are O(1), differences ~2e-7


def nhwc(path):
    return np.load(path).transpose(0, 2, 3, 1)           # timm's (B, Cin, H, W) -> ours


def with_params(cfg, params):
    model = build_model(cfg, dtype="float32")
    for name, p in params.items():
        model.params[name][...] = p
    return model


@pytest.mark.parametrize("fixture", [TINY, GAP], ids=["cls", "mean"])
def test_our_logits_match_timm(fixture):
    cfg, params, _ = load_timm(fixture)
    assert cfg.pool == ("cls" if fixture == TINY else "mean")
    logits = with_params(cfg, params).forward(nhwc(fixture / "input.npy"))
    np.testing.assert_allclose(logits, np.load(fixture / "logits.npy"), atol=ATOL, rtol=0)


@pytest.mark.parametrize("fixture", [TINY, GAP], ids=["cls", "mean"])
@pytest.mark.parametrize("size,chans", [(24, 1), (12, 6)])
def test_another_resolution_and_channel_count_match_timm(fixture, size, chans):
    """timm's own loading of the folder at img_size / in_chans (resampled positions, adapted
    patch filters) gave these logits."""
    cfg, params, _ = load_timm(fixture)
    cfg2, params2 = adapt(cfg, params, size, chans)
    assert (cfg2.image_size, cfg2.in_channels) == (size, chans)
    logits = with_params(cfg2, params2).forward(nhwc(fixture / f"input_{size}px_{chans}ch.npy"))
    np.testing.assert_allclose(logits, np.load(fixture / f"logits_{size}px_{chans}ch.npy"),
                               atol=ATOL, rtol=0)


@pytest.mark.parametrize("grid", [6, 3, 7])
def test_position_resampling_matches_timm_fixture(grid):
    _, params, _ = load_timm(TINY)
    ours = resample_positions(params["pos_embed"], grid)
    np.testing.assert_allclose(ours, np.load(TINY / f"pos_{grid}x{grid}.npy")[0], atol=1e-6,
                               rtol=0)
    np.testing.assert_array_equal(ours[0], params["pos_embed"][0])      # CLS kept


def test_resize_weights_match_torch_antialiased_bicubic():
    """What timm.layers.resample_abs_pos_embed calls: torch's interpolate(mode="bicubic",
    antialias=True), on other sizes than the fixture's. torch is the `ref` extra (CI installs
    it). timm itself cannot be a live reference here: it imports torchvision, whose wheels need
    another torch than the pinned 2.13.0; its outputs are stored in the fixture instead."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.random.default_rng(1).standard_normal((1, 3, 7, 7))
    for n in (2, 4, 5, 9, 14, 20):
        ref = F.interpolate(torch.from_numpy(x), size=(n, n), mode="bicubic",
                            antialias=True).numpy()
        W = resize_weights(7, n)
        ours = np.einsum("ah,chw,bw->cab", W, x[0], W)
        np.testing.assert_allclose(ours, ref[0], atol=1e-9, rtol=0)
        np.testing.assert_allclose(W.sum(axis=1), 1.0)


def test_export_is_what_timm_saves_and_round_trips(tmp_path):
    import_vit(TINY, tmp_path / "run")
    export_vit(tmp_path / "run", tmp_path / "timm")
    # the tensors timm wrote, byte for byte (same names, shapes, dtypes, order, no metadata)
    assert (tmp_path / "timm" / "model.safetensors").read_bytes() == \
        (TINY / "model.safetensors").read_bytes()
    exported = json.loads((tmp_path / "timm" / "config.json").read_text())
    assert config_from_timm(exported)[0] == config_from_timm(json.loads(
        (TINY / "config.json").read_text()))[0]
    import_vit(tmp_path / "timm", tmp_path / "again")
    _, model, info = load_run(tmp_path / "again")
    assert info["imported_from"]["format"] == "timm-vit"
    np.testing.assert_allclose(model.forward(nhwc(TINY / "input.npy")),
                               np.load(TINY / "logits.npy"), atol=ATOL, rtol=0)


def test_round_trip_of_a_vit_of_ours_with_mean_pooling(tmp_path):
    cfg = ViTConfig(image_size=8, patch_size=4, in_channels=2, n_classes=3, n_layer=1,
                    n_head=2, n_embd=8, pool="mean")
    model = build_model(cfg, seed=4)
    run = tmp_path / "run"
    run.mkdir()
    np.savez(run / "checkpoint.npz", **model.params, step=np.array(1))
    (run / "config.json").write_text(json.dumps({"train": {"model": "vit"},
                                                 "model": cfg.to_dict()}))
    export_vit(run, tmp_path / "timm")
    back, params, _ = load_timm(tmp_path / "timm")
    assert back == cfg
    for name, p in model.params.items():
        np.testing.assert_array_equal(params[name], p)


def test_cli_import_at_another_size_then_sample_free_fine_tune_shapes(tmp_path, capsys):
    main(["import-vit", str(TINY), "--out", str(tmp_path / "run"), "--image-size", "24",
          "--in-channels", "1"])
    assert "24x24x1 images" in capsys.readouterr().out
    _, model, _ = load_run(tmp_path / "run")
    np.testing.assert_allclose(model.forward(nhwc(TINY / "input_24px_1ch.npy")),
                               np.load(TINY / "logits_24px_1ch.npy"), atol=ATOL, rtol=0)
    with pytest.raises(SystemExit) as e:
        main(["import-vit", str(TINY), "--out", str(tmp_path / "x"), "--image-size", "30"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--image-size 30" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def _variant(tmp_path, edit_config=None, edit_tensors=None):
    d = tmp_path / "variant"
    d.mkdir()
    tc = json.loads((TINY / "config.json").read_text())
    if edit_config:
        edit_config(tc)
    (d / "config.json").write_text(json.dumps(tc))
    if edit_tensors:
        tensors, _ = read_safetensors(TINY / "model.safetensors")
        edit_tensors(tensors)
        write_safetensors(d / "model.safetensors", tensors)
    else:
        shutil.copy(TINY / "model.safetensors", d / "model.safetensors")
    return d


def _set_args(**kw):
    return lambda tc: tc["model_args"].update(kw)


@pytest.mark.parametrize("edit,tensors,expect", [
    (lambda tc: tc.update(architecture="vit_base_r50_s16_384", model_args={}), None,
     "vit_base_r50_s16_384"),                                            # conv stem (hybrid)
    (lambda tc: tc.update(architecture="beit_base_patch16_224"), None, "beit_base_patch16_224"),
    (_set_args(pos_embed="rope"), None, "pos_embed"),                    # rotary positions
    (_set_args(init_values=1e-5), None, "init_values"),                  # layer scale
    (_set_args(qk_norm=True), None, "qk_norm"),
    (_set_args(global_pool="avg"), None, "global_pool='avg'"),           # avg with fc_norm
    (_set_args(mlp_ratio=2.0), None, "mlp_ratio"),
    (_set_args(act_layer="quick_gelu"), None, "act_layer"),
    (None, lambda t: t.update({"blocks.0.attn.relative_position_bias_table":
                               np.zeros((9, 2), np.float32)}), "relative positions"),
    (None, lambda t: t.update({"patch_embed.backbone.stem.conv.weight":
                               np.zeros((4, 3, 3, 3), np.float32)}), "conv stem"),
], ids=["hybrid", "beit", "rope", "layerscale", "qknorm", "fcnorm", "mlp", "act", "relpos",
        "stem"])
def test_inexpressible_timm_models_are_one_line_exit_2(tmp_path, capsys, edit, tensors, expect):
    d = _variant(tmp_path, edit, tensors)
    with pytest.raises(SystemExit) as e:
        main(["import-vit", str(d), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and expect in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert not (tmp_path / "run").exists()


def test_plain_architecture_without_model_args_uses_timms_sizes():
    tc = {"architecture": "vit_small_patch16_224", "num_classes": 1000, "global_pool": "token",
          "pretrained_cfg": {"input_size": [3, 384, 384]}}
    cfg, _ = config_from_timm(tc)
    assert (cfg.n_embd, cfg.n_layer, cfg.n_head, cfg.patch_size, cfg.image_size,
            cfg.in_channels, cfg.n_classes) == (384, 12, 6, 16, 384, 3, 1000)


def test_export_refuses_what_timm_cannot_express(tmp_path, capsys):
    cfg = ViTConfig(image_size=8, patch_size=4, n_layer=1, n_head=2, n_embd=8, norm="post")
    model = build_model(cfg)
    run = tmp_path / "run"
    run.mkdir()
    np.savez(run / "checkpoint.npz", **model.params, step=np.array(0))
    (run / "config.json").write_text(json.dumps({"train": {"model": "vit"},
                                                 "model": cfg.to_dict()}))
    with pytest.raises(SystemExit) as e:
        main(["export-vit", str(run), "--out", str(tmp_path / "timm")])
    assert e.value.code == 2 and "norm='post'" in capsys.readouterr().err
