"""The one table of parameter names and their roles (docs/design.md#parameter-names).

GPT uses Hugging Face GPT-2's names, ViT timm's. Both models have the same block, so a block's
six modules are named through the same six slots:

    slot      GPT (under "h.{i}.")   ViT (under "blocks.{i}.")   role of .weight
    ln_1      ln_1                   norm1                       norm_weight
    qkv       attn.c_attn            attn.qkv                    qkv      (C, 3C): columns [q | k | v]
    proj      attn.c_proj            attn.proj                   proj     (C, C): attention output
    ln_2      ln_2                   norm2                       norm_weight
    fc        mlp.c_fc               mlp.fc1                     fc       (C, 4C)
    fc_proj   mlp.c_proj             mlp.fc2                     fc_proj  (4C, C): MLP output
    (alpha)   alpha                  alpha                       alpha    (1,): ReZero gate

Outside the blocks:

    GPT  wte.weight (embed; also the tied LM head), wpe.weight (pos), ln_f (final norm)
    ViT  patch_embed (patch: a Linear (P*P*Cin, C)), cls_token (cls), pos_embed (pos),
         norm (final norm), head (head: a Linear (C, K))

Every bias has role "bias" and every LayerNorm parameter "norm_weight" / "norm_bias". The groups
of roles below are what the rest of the package asks about: which tensors are weight matrices
(`--init-scale` multiplies them), embedding tables (looked up or added, never multiplied by an
activation), or muP's hidden (width x width) matrices. Adding a tensor means editing this file,
the model's param_shapes, and its forward/backward.
"""
from typing import NamedTuple

ROLES = {
    "embed": "token embedding table (GPT's wte, also the tied LM head)",
    "pos": "position table (wpe, pos_embed)",
    "cls": "the ViT's class token",
    "patch": "patch embedding weight (ViT): the token embedding of an image",
    "head": "classifier head weight (ViT)",
    "qkv": "fused attention input weight, columns [q | k | v]",
    "proj": "attention output weight (a residual writer)",
    "fc": "MLP input weight",
    "fc_proj": "MLP output weight (a residual writer)",
    "alpha": "ReZero gate, one per block",
    "norm_weight": "LayerNorm gain",
    "norm_bias": "LayerNorm shift",
    "bias": "a Linear's bias",
}
MATRICES = ("qkv", "proj", "fc", "fc_proj", "patch", "head")   # multiply activations
TABLES = ("embed", "pos", "cls")                                # looked up or added
HIDDEN = ("qkv", "proj", "fc", "fc_proj")                       # width x width: muP's hidden
RESIDUAL_WRITERS = ("proj", "fc_proj")                          # write into the residual stream
BLOCK_SLOTS = ("ln_1", "qkv", "proj", "ln_2", "fc", "fc_proj")  # in the order of the parameters


class BlockNames(NamedTuple):
    """Module names inside one block, under the block's prefix ("h.3." or "blocks.3.")."""
    ln_1: str
    qkv: str
    proj: str
    ln_2: str
    fc: str
    fc_proj: str


class ModelNames(NamedTuple):
    """Every name of one model kind. Tables are tensor names; linears and norms are module names
    (their tensors add ".weight" and ".bias"). None: the model has no such tensor."""
    prefix: str            # the blocks: "h." or "blocks."; block i is "{prefix}{i}."
    block: BlockNames
    embed: str             # token embedding table, or None
    pos: str               # position table
    cls: str               # class token, or None
    patch: str             # patch embedding module, or None
    final_norm: str        # the LayerNorm after the last block (pre-LN only)
    head: str              # classifier head module, or None (GPT's head is the tied embed)


GPT_NAMES = ModelNames(
    prefix="h.",
    block=BlockNames(ln_1="ln_1", qkv="attn.c_attn", proj="attn.c_proj", ln_2="ln_2",
                     fc="mlp.c_fc", fc_proj="mlp.c_proj"),
    embed="wte.weight", pos="wpe.weight", cls=None, patch=None, final_norm="ln_f", head=None)

VIT_NAMES = ModelNames(
    prefix="blocks.",
    block=BlockNames(ln_1="norm1", qkv="attn.qkv", proj="attn.proj", ln_2="norm2",
                     fc="mlp.fc1", fc_proj="mlp.fc2"),
    embed=None, pos="pos_embed", cls="cls_token", patch="patch_embed", final_norm="norm",
    head="head")

ALL_NAMES = (GPT_NAMES, VIT_NAMES)


def block_prefix(names, i):
    """The prefix of block i: "h.3." / "blocks.3."."""
    return f"{names.prefix}{i}."


def weight_bias(module):
    """The two tensor names of a Linear or LayerNorm module: (module.weight, module.bias)."""
    return module + ".weight", module + ".bias"


def pair(params, module):
    """(weight, bias) arrays of a Linear or LayerNorm module from a params (or grads) dict."""
    return params[module + ".weight"], params[module + ".bias"]


def _slot_role(slot):
    return "norm" if slot in ("ln_1", "ln_2") else slot


def _role_tables():
    """({tensor name inside a block: role}, {tensor name outside the blocks: role}) of both
    models, built from the name tables above so that they cannot disagree."""
    inner, outer = {"alpha": "alpha"}, {}
    for names in ALL_NAMES:
        for slot, module in names.block._asdict().items():
            r = _slot_role(slot)
            inner[module + ".weight"] = "norm_weight" if r == "norm" else r
            inner[module + ".bias"] = "norm_bias" if r == "norm" else "bias"
        for field in ("embed", "pos", "cls"):
            if getattr(names, field):
                outer[getattr(names, field)] = field
        for field in ("patch", "head"):
            if getattr(names, field):
                outer[getattr(names, field) + ".weight"] = field
                outer[getattr(names, field) + ".bias"] = "bias"
        outer[names.final_norm + ".weight"] = "norm_weight"
        outer[names.final_norm + ".bias"] = "norm_bias"
    return inner, outer


_INNER, _OUTER = _role_tables()
_SLOT_OF = {module: slot for names in ALL_NAMES for slot, module in names.block._asdict().items()}


def split_block_name(name):
    """("h.", 3, "attn.c_attn.weight") for a tensor of block 3, None outside the blocks."""
    for names in ALL_NAMES:
        if name.startswith(names.prefix):
            index, _, rest = name[len(names.prefix):].partition(".")
            if index.isdigit():
                return names.prefix, int(index), rest
    return None


def block_slot(name):
    """The slot (ln_1, qkv, proj, ln_2, fc, fc_proj, or alpha) of a block tensor; None outside
    the blocks."""
    parts = split_block_name(name)
    if parts is None:
        return None
    module = parts[2].rpartition(".")[0]
    return _SLOT_OF.get(module, parts[2])


def sibling(name, slot, tensor="weight"):
    """The tensor `slot`.`tensor` of the same block as `name`: sibling("h.2.attn.c_attn.weight",
    "proj") is "h.2.attn.c_proj.weight"."""
    prefix, i, _ = split_block_name(name)
    names = next(n for n in ALL_NAMES if n.prefix == prefix)
    return f"{block_prefix(names, i)}{getattr(names.block, slot)}.{tensor}"


def role(name):
    """What a parameter is, from its GPT-2 or timm name: one of ROLES. A name that neither model
    has is a KeyError (a bug: parameter names come from param_shapes)."""
    parts = split_block_name(name)
    if parts is not None:
        return _INNER[parts[2]]
    return _OUTER[name]


def fans(name, shape):
    """(fan_in, fan_out) of the logical matrix; (None, None) for vectors. Weights are stored
    (in, out); the fused qkv (C, 3C) holds three C x C matrices, so its fans are (C, C)."""
    if len(shape) != 2:
        return None, None
    if role(name) == "qkv":
        return shape[0], shape[1] // 3
    return shape[0], shape[1]


def qkv_parts(name, w):
    """[(name[q], W_q), (name[k], W_k), (name[v], W_v)]: the three (C, C) column blocks of a
    fused qkv weight (C, 3C), as views."""
    C = w.shape[0]
    return [(f"{name}[{part}]", w[:, j * C:(j + 1) * C]) for j, part in enumerate("qkv")]


def readout(names):
    """The tensors that map the last hidden state to logits: the ViT's head, or the GPT's tied
    token embedding (which is also its input embedding)."""
    if names.head:
        return [names.head + ".weight", names.head + ".bias"]
    return [names.embed]
