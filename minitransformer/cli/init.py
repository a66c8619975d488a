"""`inits`, `import-gpt2`, `export-gpt2`, `import-vit` and `export-vit`: click options mapped onto
audit.list_schemes / audit.show, hf.import_gpt2 / export_gpt2 and timm_vit.import_vit /
export_vit. No logic here."""
import click

from ..init import InitOptions
from .options import nonempty_path

# (flag, model-config field, type): the model settings `inits --show` can change.
MODEL_OPTIONS = [
    ("--n-layer", "n_layer", int), ("--n-head", "n_head", int), ("--n-embd", "n_embd", int),
    ("--block-size", "block_size", int), ("--vocab-size", "vocab_size", int),
    ("--image-size", "image_size", int), ("--patch-size", "patch_size", int),
    ("--in-channels", "in_channels", int), ("--n-classes", "n_classes", int),
    ("--norm", "norm", str), ("--pool", "pool", str),
]


def _model_options(fn):
    for flag, field, type_ in reversed(MODEL_OPTIONS):
        fn = click.option(flag, field, type=type_, default=None,
                          help=f"Model {field} (default: the model's default).")(fn)
    return click.option("--rezero/--no-rezero", "rezero", default=None,
                        help="ReZero gate on every block (default: the model's default).")(fn)


@click.command("inits")
@click.option("--show", "name", default=None, metavar="NAME",
              help="Audit scheme NAME: per tensor, promised vs measured std.")
@click.option("--model", "model", default="gpt", show_default=True, help="gpt | vit.")
@_model_options
@click.option("--init-std", type=float, default=0.02, show_default=True, help="Std of 'normal'.")
@click.option("--init-scale", type=float, default=1.0, show_default=True,
              help="Multiplies every weight matrix after the scheme.")
@click.option("--base-width", type=int, default=None, help="muP base width (default: n_embd).")
@click.option("--impulse-k", type=int, default=3, show_default=True,
              help="structured: impulse window k x k.")
@click.option("--seed", type=int, default=0, show_default=True)
def inits(name, model, init_std, init_scale, base_width, impulse_k, seed, **fields):
    """List every initialization scheme, or audit one (--show NAME) on a model.

    The audit exits with status 1 when a tensor's measured std breaks its promise."""
    from ..init.audit import list_schemes, show
    if name is None:
        click.echo(list_schemes())
        return
    opts = InitOptions(init_std=init_std, init_scale=init_scale, base_width=base_width,
                       impulse_k=impulse_k)
    text, bad = show(model, name, {k: v for k, v in fields.items() if v is not None}, seed, opts)
    click.echo(text)
    if bad:
        raise click.exceptions.Exit(1)


@click.command("import-gpt2")
@click.argument("hf_dir")
@click.option("--out", "out_dir", required=True, callback=nonempty_path,
              help="Run folder to write.")
def import_gpt2(hf_dir, out_dir):
    """Import a Hugging Face GPT-2 folder (config.json + model.safetensors, and tokenizer.json or
    vocab.json + merges.txt when present) as a run folder. Needs the hf extra."""
    from ..analysis.hf import import_gpt2 as run
    cfg, params, tok = run(hf_dir, out_dir)
    words = (f"BPE tokenizer {'+'.join(tok.files)}" if tok is not None
             else "no tokenizer files: the run works on token ids")
    click.echo(f"imported GPT-2 ({cfg.n_layer} layers, {cfg.n_head} heads, {cfg.n_embd} channels, "
               f"vocabulary {cfg.vocab_size}, {cfg.block_size} positions; "
               f"{sum(p.size for p in params.values()):,} parameters; {words}) -> {out_dir}")


@click.command("export-gpt2")
@click.argument("run_dir")
@click.option("--out", "out_dir", required=True, callback=nonempty_path,
              help="Folder for config.json + model.safetensors.")
def export_gpt2(run_dir, out_dir):
    """Write a GPT run as a Hugging Face GPT-2 folder (GPT2LMHeadModel.from_pretrained loads it)."""
    from ..analysis.hf import export_gpt2 as run
    run(run_dir, out_dir)
    click.echo(f"wrote {out_dir}/config.json and {out_dir}/model.safetensors")


@click.command("import-vit")
@click.argument("timm_dir")
@click.option("--out", "out_dir", required=True, help="Run folder to write.")
@click.option("--image-size", type=int, default=None,
              help="Image size to fine-tune at (positions resampled bicubically, as timm does).")
@click.option("--in-channels", type=int, default=None,
              help="Image channels to fine-tune with (patch filters summed or repeated, as timm).")
def import_vit(timm_dir, out_dir, image_size, in_channels):
    """Import a timm ViT folder (config.json + model.safetensors, as timm saves and the Hub
    serves) as a run folder. Needs the hf extra."""
    from ..analysis.timm_vit import import_vit as run
    cfg, params = run(timm_dir, out_dir, image_size, in_channels)
    click.echo(f"imported timm ViT ({cfg.n_layer} layers, {cfg.n_head} heads, {cfg.n_embd} "
               f"channels, {cfg.image_size}x{cfg.image_size}x{cfg.in_channels} images in "
               f"{cfg.patch_size}x{cfg.patch_size} patches, {cfg.n_classes} classes, pool "
               f"{cfg.pool}; {sum(p.size for p in params.values()):,} parameters) -> {out_dir}")


@click.command("export-vit")
@click.argument("run_dir")
@click.option("--out", "out_dir", required=True, help="Folder for config.json + model.safetensors.")
def export_vit(run_dir, out_dir):
    """Write a ViT run as a timm folder (timm.create_model("local-dir:DIR", pretrained=True)
    loads it). Needs the hf extra."""
    from ..analysis.timm_vit import export_vit as run
    run(run_dir, out_dir)
    click.echo(f"wrote {out_dir}/config.json and {out_dir}/model.safetensors")


COMMANDS = [inits, import_gpt2, export_gpt2, import_vit, export_vit]
