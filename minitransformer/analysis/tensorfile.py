"""safetensors files through the `safetensors` library (the `hf` extra), with our checks.

    tensors, metadata = read_safetensors("gpt2/model.safetensors")   # {name: array}, {str: str}
    config, tensors = read_model_folder("gpt2", "Hugging Face")       # config.json + weights
    write_safetensors("out/model.safetensors", tensors, metadata={"format": "pt"})

The format: 8 bytes of little-endian header length, a JSON header {name: {dtype, shape,
data_offsets}, "__metadata__": {...}}, then the raw little-endian bytes. The library validates the
header (offsets inside the file, no overlaps, sizes that match shapes) and reads each tensor with
pread(2) straight into its own array, so importing an N-byte float32 file needs about N bytes of
memory, not the 2N a read-everything-then-copy reader needs (backend="pread"; the default mmap
backend would add the mapped file's pages to the process's resident memory).

What we add: only the dtypes a model can hold are accepted (floats, ints, bool); float16 and
bfloat16 are widened to float32. NumPy has no bfloat16, so those tensors (and only those) are
read from the offsets of the header the library has already validated: a bfloat16 is the top 16
bits of a float32. Writing goes through the library too (tensors sorted as it sorts them, header
padded to 8 bytes), so an export is byte for byte what `save_pretrained` writes; it is atomic.
"""
import json
from pathlib import Path
import struct

import numpy as np

from ..errors import DataError, NotFound, require
from ..training.runfolder import atomic_path, read_json

ACCEPTED = ("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL")
WIDENED = ("F16", "BF16")                      # read as float32


def _library():
    return require("safetensors", "hf", "reading safetensors files")


def read_safetensors(path):
    """({name: array}, metadata dict) of a .safetensors file; float16/bfloat16 become float32.
    A missing, damaged or unsupported file is a DataError naming it."""
    st = _library()
    path = Path(path)
    if not path.is_file():
        raise DataError(f"safetensors file not found: {path}")
    tensors, bf16 = {}, []
    try:
        with st.safe_open(str(path), framework="np", backend="pread") as f:
            metadata = dict(f.metadata() or {})
            for name in f.offset_keys():               # file order: reads go forward
                code = f.get_slice(name).get_dtype()
                if code not in ACCEPTED:
                    raise DataError(f"{path}: tensor {name!r} has dtype {code}; expected one of "
                                    f"{', '.join(ACCEPTED)}")
                if code == "BF16":
                    bf16.append(name)
                    continue
                x = f.get_tensor(name)
                tensors[name] = x.astype(np.float32) if code == "F16" else x
    except st.SafetensorError as e:
        raise DataError(f"{path} is not a usable safetensors file ({e})") from None
    for name in bf16:
        tensors[name] = _read_bf16(path, name)
    return tensors, metadata


def _read_bf16(path, name):
    """One bfloat16 tensor as float32 (the library has validated the header and offsets)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        info = json.loads(f.read(n))[name]
        begin, end = info["data_offsets"]
        f.seek(8 + n + begin)
        raw = np.frombuffer(f.read(end - begin), "<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])


def write_safetensors(path, tensors, metadata=None):
    """Write {name: array} as safetensors, atomically; metadata values become strings."""
    st_numpy = require("safetensors.numpy", "hf", "writing safetensors files")
    arrays = {}
    for name, x in tensors.items():
        x = np.ascontiguousarray(x)
        if x.dtype.kind not in "fiub":
            raise DataError(f"cannot write {name}: dtype {x.dtype} is not a model dtype")
        arrays[name] = x
    meta = {str(k): str(v) for k, v in metadata.items()} if metadata else None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        st_numpy.save_file(arrays, str(tmp), metadata=meta)


def read_model_folder(folder, what):
    """(config.json as a dict, {name: array} of model.safetensors) of a downloaded model folder
    (Hugging Face's and timm's layout); `what` names the kind of folder in messages."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFound(f"{what} folder not found: {folder}")
    cfg_path, st_path = folder / "config.json", folder / "model.safetensors"
    for p in (cfg_path, st_path):
        if not p.is_file():
            raise NotFound(f"{folder} has no {p.name} (sharded or .bin checkpoints are not "
                           f"supported)")
    config = read_json(cfg_path)                       # a JSON object, or one error naming it
    return config, read_safetensors(st_path)[0]
