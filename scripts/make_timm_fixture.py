#!/usr/bin/env python
"""Make tests/fixtures/timm_vit_tiny/ (and timm_vit_tiny_gap/) ONCE with the real `timm` library.

    python -m venv /tmp/timmvenv                      # timm needs torchvision, whose wheel must
    /tmp/timmvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm numpy safetensors
    /tmp/timmvenv/bin/python scripts/make_timm_fixture.py     # (a matching pair; never the project)

Two tiny random ViTs (16x16 RGB images, 4x4 patches, 24 channels, 2 heads, 2 blocks, 5 classes),
saved by timm.models.save_for_hf exactly as timm saves and pushes to the Hub (config.json with
"architecture" and "model_args", model.safetensors):
  timm_vit_tiny/      class token, global_pool="token" (our pool="cls")
  timm_vit_tiny_gap/  no class token, global_pool="avg", fc_norm=False (our pool="mean")
Every parameter is moved away from its init by N(0, 0.1^2) noise, so a tensor mapped wrongly
cannot pass by luck. Beside them, what timm computes from them (tests/test_vit_import.py):
  input.npy, logits.npy                 (2, 3, 16, 16) NCHW images and the model's logits
  input_24px_1ch.npy, logits_24px_1ch.npy   timm loading the folder at img_size=24, in_chans=1
  input_12px_6ch.npy, logits_12px_6ch.npy   ... at img_size=12, in_chans=6
    (timm's own adaptation: checkpoint_filter_fn resamples pos_embed with
     resample_abs_pos_embed, _builder adapts the patch filters with adapt_input_conv)
  pos_{G}x{G}.npy                       timm.layers.resample_abs_pos_embed(pos_embed, [G, G])
"""
from pathlib import Path
import shutil

import numpy as np
import timm
import torch
import torchvision
from timm.layers import resample_abs_pos_embed
from timm.models import save_for_hf

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
ARCH = "vit_tiny_patch16_224"
ARGS = dict(img_size=16, patch_size=4, embed_dim=24, depth=2, num_heads=2, num_classes=5)
VARIANTS = {"timm_vit_tiny": {}, "timm_vit_tiny_gap": dict(class_token=False, global_pool="avg",
                                                           fc_norm=False)}


def perturbed(extra, seed):
    torch.manual_seed(seed)
    model = timm.create_model(ARCH, pretrained=False, **ARGS, **extra).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def adapted(out, img_size, in_chans):
    """What timm builds from the saved folder at another resolution / channel count."""
    return timm.create_model(f"local-dir:{out}", pretrained=True, img_size=img_size,
                             in_chans=in_chans).eval()


def main():
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 16, 16, generator=gen)
    for seed, (name, extra) in enumerate(VARIANTS.items()):
        out = ROOT / name
        if out.exists():
            shutil.rmtree(out)
        model = perturbed(extra, seed)
        save_for_hf(model, out, safe_serialization=True)    # config.json + model.safetensors
        (out / "pytorch_model.bin").unlink(missing_ok=True)
        with torch.no_grad():
            np.save(out / "input.npy", images.numpy())
            np.save(out / "logits.npy", model(images).numpy())
            for size, chans in ((24, 1), (12, 6)):
                x = torch.rand(2, chans, size, size, generator=gen)
                np.save(out / f"input_{size}px_{chans}ch.npy", x.numpy())
                logits = adapted(out, size, chans)(x).numpy()
                np.save(out / f"logits_{size}px_{chans}ch.npy", logits)
            if extra.get("class_token", True):
                for grid in (6, 3, 7):
                    pos = resample_abs_pos_embed(model.pos_embed, [grid, grid], num_prefix_tokens=1)
                    np.save(out / f"pos_{grid}x{grid}.npy", pos.numpy())
        (out / "VERSIONS.txt").write_text(f"timm {timm.__version__}\ntorch {torch.__version__}\n"
                                          f"torchvision {torchvision.__version__}\n")
        for f in sorted(out.iterdir()):
            print(f"{name}/{f.name:24s} {f.stat().st_size:>8,d} bytes")


if __name__ == "__main__":
    main()
