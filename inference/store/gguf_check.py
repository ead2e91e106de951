"""Validate a text GGUF + mmproj GGUF pair with the `gguf` reader before llama.cpp sees it.

llama.cpp ends the whole process on some malformed files (a key of the wrong type, a missing projector
tensor); every problem found here is instead a clear message naming the file and what is wrong.
"""

from __future__ import annotations

import struct
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import gguf
import numpy as np

from inference.families import BY_PROJECTOR
from inference.imageprep import QWEN25VL_DEFAULT_MAX_TOKENS
from inference.store.manifest import Manifest, ModelFile, sha256_file
from inference.store.verified import file_identity, is_verified, record_verified

SUPPORTED_TEXT_ARCHITECTURES = ("qwen2", "llama", "qwen2vl")
# projector type -> the text architectures it belongs with: LLaVA-style HuatuoGPT-Vision, and Qwen2.5-VL
PROJECTOR_TEXT_ARCHITECTURES = {"mlp": ("qwen2", "llama"), "qwen2.5vl_merger": ("qwen2vl",)}
T = gguf.GGUFValueType


class ModelFileError(Exception):
    """A model file that must not be loaded; the message names the file and the problem."""


@dataclass(frozen=True)
class PairInfo:
    """What the engine needs to know about a validated pair."""

    text_path: Path
    mmproj_path: Path
    architecture: str
    context_length: int
    hidden_size: int
    n_layers: int
    n_kv_heads: int
    head_dim: int
    image_size: int
    image_tokens: int
    text_bytes: int
    mmproj_bytes: int
    projector: str = "mlp"  # "qwen2.5vl_merger": images at their own size, image_tokens is the most per image
    sha256: tuple[str, str] | None = None  # (text, mmproj) as the manifest records them, for a checked folder
    family: str = "llava"  # inference/families.py: the prompt format and the image preparation
    image_min_pixels: int | None = None  # Qwen2.5-VL: the pixel budget of an image (the manifest's)
    image_max_pixels: int | None = None


def _open(path: Path) -> gguf.GGUFReader:
    if not path.is_file():
        raise ModelFileError(f"{path}: file not found")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelFileError(f"{path.name} is not a GGUF file")
    try:
        reader = HeaderReader.read(path)
    except OSError as exc:
        raise ModelFileError(f"{path.name} could not be read ({exc.strerror or exc})") from None
    except Exception as exc:  # the reader raises ValueError, IndexError, struct errors on damaged files
        raise ModelFileError(f"{path.name} is damaged or truncated ({type(exc).__name__}: {exc})") from None
    size = path.stat().st_size
    for tensor in reader.tensors:
        if tensor.data_offset + tensor.n_bytes > size:
            raise ModelFileError(f"{path.name} is truncated: tensor {tensor.name} runs past the end of the file")
    return reader


class _NeedMore(Exception):
    pass


class HeaderReader(gguf.GGUFReader):
    """gguf's reader over a copy of the file's header in memory, not a map of the file itself: a model file
    replaced or truncated while it is being checked then gives an error, never a bus error that ends the process
    (reading a mapped page past the new end of a file raises SIGBUS). Tensor data is never read: its views are
    zeros that take no memory."""

    FIRST_READ = 16 * 1024 * 1024  # a 150k-token vocabulary and its merges take a few MB

    @classmethod
    def read(cls, path: Path) -> HeaderReader:
        size, wanted = path.stat().st_size, cls.FIRST_READ
        while True:
            with open(path, "rb") as f:
                header = f.read(min(wanted, size))
            try:
                return cls(header, complete=len(header) >= size)
            except _NeedMore:
                wanted *= 4

    def __init__(self, header: bytes, complete: bool):
        self._complete = complete
        self._tensor_views = False
        self._bytes = header
        self._header = np.frombuffer(header, dtype=np.uint8)
        with tempfile.TemporaryFile() as placeholder:  # gguf maps the file it is given: one byte, unused
            placeholder.write(b"\0")
            placeholder.flush()
            super().__init__(placeholder)

    @property
    def data(self) -> np.ndarray:
        return self._header

    @data.setter
    def data(self, _mapped) -> None:
        # gguf's map of the file is replaced by the header's bytes in memory: plain arrays, whose views (two for
        # each of a vocabulary's 150k strings) are many times quicker to make than a memmap's.
        pass

    def _build_tensors(self, start_offs, fields) -> None:
        self._tensor_views = True
        super()._build_tensors(start_offs, fields)

    def _get(self, offset, dtype, count=1, override_order=None):
        count = int(count)
        itemsize = _ITEMSIZE.get(dtype) or _ITEMSIZE.setdefault(dtype, np.dtype(dtype).itemsize)
        end = offset + itemsize * count
        if end > len(self._header):
            if self._tensor_views:
                return np.broadcast_to(np.zeros((), dtype), (count,))
            if not self._complete:
                raise _NeedMore
        if override_order is None and self.byte_order == "I":  # the usual case, without gguf's extra views
            values = self._header[offset:end].view(dtype)
            if len(values) != count:
                raise ValueError(f"the header ends inside a value at offset {offset}")
            return values
        return super()._get(offset, dtype, count, override_order)


    def _get_field_parts(self, orig_offs: int, raw_type: int):
        """gguf's parts of one value; an array (a vocabulary, its merges and token types: 450k items) is read here
        into the same parts as gguf makes, without gguf's several calls per item."""
        if raw_type != _ARRAY or self.byte_order != "I":
            return super()._get_field_parts(orig_offs, raw_type)
        item_type, count = self._get(orig_offs, np.uint32), self._get(orig_offs + 4, np.uint64)
        n, kind = int(count[0]), int(item_type[0])
        types = [T.ARRAY] + ([T(kind)] if n else [])
        scalar = self.gguf_scalar_to_np.get(T(kind)) if kind in _TYPES else None
        if scalar is not None:  # one view of all the values, one part (a view of one value) per item
            values = self._get(orig_offs + 12, scalar, n)
            return 12 + values.nbytes, [item_type, count, *values.reshape(-1, 1)], list(range(2, 2 + n)), types
        if kind != _STRING:
            return super()._get_field_parts(orig_offs, raw_type)
        parts, data, header, size = [item_type, count], [], self._header, len(self._bytes)
        offs = orig_offs + 12
        for _ in range(n):
            end = offs + 8 + (_U64.unpack_from(self._bytes, offs)[0] if offs + 8 <= size else 0)
            if end > size or offs + 8 > size:
                raise _NeedMore if not self._complete else ValueError(f"a string runs past the header at {offs}")
            parts += (header[offs:offs + 8].view(np.uint64), header[offs + 8:end])
            data.append(len(parts) - 1)
            offs = end
        return offs - orig_offs, parts, data, types


_ARRAY, _STRING = int(T.ARRAY), int(T.STRING)
_TYPES = {int(t) for t in T}
_ITEMSIZE: dict = {}
_U64 = struct.Struct("<Q")


def _field(reader: gguf.GGUFReader, path: Path, key: str, types: tuple, required: bool = True):
    """The value of key, checked to have exactly the given GGUF type(s) (arrays: (ARRAY, element type))."""
    field = reader.fields.get(key)
    if field is None:
        if required:
            raise ModelFileError(f"{path.name}: the key {key} is missing")
        return None
    if tuple(field.types) != types:
        want = "/".join(t.name for t in types)
        got = "/".join(t.name for t in field.types)
        raise ModelFileError(f"{path.name}: the key {key} is stored as {got}, llama.cpp needs {want}")
    if types[0] == T.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    if types[0] == T.ARRAY:
        return [field.parts[i].tolist()[0] if types[1] != T.STRING else bytes(field.parts[i]).decode()
                for i in field.data]
    return field.parts[field.data[0]].tolist()[0]


def check_text(path: Path) -> dict:
    reader = _open(path)
    arch = _field(reader, path, "general.architecture", (T.STRING,))
    if arch not in SUPPORTED_TEXT_ARCHITECTURES:
        if arch == "clip":
            raise ModelFileError(f"{path.name} is a vision projector (mmproj), not the text model")
        raise ModelFileError(f"{path.name}: architecture {arch!r} is not HuatuoGPT-Vision's (qwen2, llama or qwen2vl)")
    u32 = (T.UINT32,)
    info = {
        "architecture": arch,
        "context_length": _field(reader, path, f"{arch}.context_length", u32),
        "hidden_size": _field(reader, path, f"{arch}.embedding_length", u32),
        "n_layers": _field(reader, path, f"{arch}.block_count", u32),
        "n_heads": _field(reader, path, f"{arch}.attention.head_count", u32),
        "n_kv_heads": _field(reader, path, f"{arch}.attention.head_count_kv", u32, required=False),
    }
    # Without it llama.cpp silently uses 10000 and every logit is wrong.
    _field(reader, path, f"{arch}.rope.freq_base", (T.FLOAT32,))
    _field(reader, path, f"{arch}.attention.layer_norm_rms_epsilon", (T.FLOAT32,))
    if arch == "qwen2vl":  # M-RoPE: without its sections llama.cpp cannot place text and image positions
        sections = _field(reader, path, "qwen2vl.rope.dimension_sections", (T.ARRAY, T.INT32))
        head_dim = info["hidden_size"] // info["n_heads"]
        if len(sections) != 4 or 2 * sum(sections) != head_dim:
            raise ModelFileError(f"{path.name}: the M-RoPE sections {sections} do not cover the head size {head_dim}")
    tokenizer = _field(reader, path, "tokenizer.ggml.model", (T.STRING,))
    if "tokenizer.ggml.tokens" not in reader.fields:
        raise ModelFileError(f"{path.name}: the vocabulary (tokenizer.ggml.tokens) is missing")
    if tokenizer == "gpt2":
        _field(reader, path, "tokenizer.ggml.pre", (T.STRING,))
    names = {t.name for t in reader.tensors}
    required = ["token_embd.weight", "output_norm.weight"] + [
        f"blk.{i}.{part}.weight" for i in range(info["n_layers"])
        for part in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm",
                     "ffn_norm")
    ]
    missing = [n for n in required if n not in names]
    if missing:
        raise ModelFileError(f"{path.name}: {len(missing)} tensors are missing, e.g. {missing[0]}")
    info["n_kv_heads"] = info["n_kv_heads"] or info["n_heads"]
    info["head_dim"] = info["hidden_size"] // info["n_heads"]
    return info


def check_mmproj(path: Path) -> dict:
    reader = _open(path)
    arch = _field(reader, path, "general.architecture", (T.STRING,))
    if arch != "clip":
        raise ModelFileError(f"{path.name} is not a vision projector (architecture {arch!r}, expected 'clip')")
    if not _field(reader, path, "clip.has_vision_encoder", (T.BOOL,)):
        raise ModelFileError(f"{path.name} has no vision encoder")
    projector = _field(reader, path, "clip.projector_type", (T.STRING,))
    if projector not in PROJECTOR_TEXT_ARCHITECTURES:
        raise ModelFileError(f"{path.name}: projector type {projector!r} is not HuatuoGPT-Vision's "
                             f"({' or '.join(repr(p) for p in PROJECTOR_TEXT_ARCHITECTURES)})")
    u32 = (T.UINT32,)
    info = {key: _field(reader, path, f"clip.vision.{key}", u32)
            for key in ("image_size", "patch_size", "embedding_length", "feed_forward_length", "block_count",
                        "attention.head_count", "projection_dim")}
    info["projector"] = projector
    _field(reader, path, "clip.vision.attention.layer_norm_epsilon", (T.FLOAT32,))
    _field(reader, path, "clip.vision.image_mean", (T.ARRAY, T.FLOAT32))
    _field(reader, path, "clip.vision.image_std", (T.ARRAY, T.FLOAT32))
    tensors = {t.name: t for t in reader.tensors}
    for name in ("mm.1.weight", "mm.3.weight"):
        if name in tensors:
            raise ModelFileError(f"{path.name}: unexpected tensor {name} (it changes the projector llama.cpp runs)")
    if projector == "mlp":
        required = _check_llava_projector(reader, path, info, tensors)
    else:
        required = _check_qwen25vl_projector(reader, path, info, tensors)
    missing = [n for n in required if n not in tensors]
    if missing:
        raise ModelFileError(f"{path.name}: {len(missing)} tensors are missing, e.g. {missing[0]}")
    out_width = int(np.prod(tensors["mm.2.weight"].shape[1:])) if len(tensors["mm.2.weight"].shape) > 1 else 0
    info["projector_output"] = int(tensors["mm.2.bias"].shape[0]) or out_width
    return info


def _check_llava_projector(reader, path: Path, info: dict, tensors: dict) -> list[str]:
    layers = _field(reader, path, "clip.vision.feature_layer", (T.ARRAY, T.INT32))
    if layers != [info["block_count"]]:
        raise ModelFileError(
            f"{path.name}: feature_layer {layers} should be [{info['block_count']}] (the last written layer); "
            f"llama.cpp would run a different number of layers than the model uses"
        )
    if "v.class_embd" in tensors and tensors["v.class_embd"].tensor_type != gguf.GGMLQuantizationType.F32:
        raise ModelFileError(f"{path.name}: v.class_embd must be F32 for llama.cpp")
    return ["v.patch_embd.weight", "v.class_embd", "v.position_embd.weight", "v.pre_ln.weight",
            "mm.0.weight", "mm.0.bias", "mm.2.weight", "mm.2.bias"] + [
        f"v.blk.{i}.{part}.{kind}" for i in range(info["block_count"])
        for part in ("attn_q", "attn_k", "attn_v", "attn_out", "ln1", "ln2", "ffn_up", "ffn_down")
        for kind in ("weight", "bias")
    ]


def _check_qwen25vl_projector(reader, path: Path, info: dict, tensors: dict) -> list[str]:
    # llama.cpp asserts (ends the process) on a class embedding or a patch bias in this graph.
    for name in ("v.class_embd", "v.patch_embd.bias"):
        if name in tensors:
            raise ModelFileError(f"{path.name}: unexpected tensor {name} (llama.cpp's Qwen2.5-VL graph has none)")
    pattern = _field(reader, path, "clip.vision.n_wa_pattern", (T.UINT32,))
    if not pattern:
        raise ModelFileError(f"{path.name}: clip.vision.n_wa_pattern is 0 (no full-attention layers)")
    merge = _field(reader, path, "clip.vision.spatial_merge_size", (T.UINT32,), required=False)
    if merge not in (None, 2):
        raise ModelFileError(f"{path.name}: spatial merge size {merge}; llama.cpp's window attention assumes 2")
    if not _field(reader, path, "clip.use_silu", (T.BOOL,), required=False):
        raise ModelFileError(f"{path.name}: clip.use_silu is not set; the Qwen2.5-VL vision MLP uses SiLU")
    return ["v.patch_embd.weight", "v.patch_embd.weight.1", "v.post_ln.weight",
            "mm.0.weight", "mm.0.bias", "mm.2.weight", "mm.2.bias"] + [
        f"v.blk.{i}.{part}.{kind}" for i in range(info["block_count"])
        for part, kinds in (("attn_q", "wb"), ("attn_k", "wb"), ("attn_v", "wb"), ("attn_out", "wb"),
                            ("ffn_gate", "wb"), ("ffn_up", "wb"), ("ffn_down", "wb"), ("ln1", "w"), ("ln2", "w"))
        for kind in ({"w": "weight", "b": "bias"}[k] for k in kinds)
    ]


def check_pair(text_path: str | Path, mmproj_path: str | Path, manifest: Manifest | None = None) -> PairInfo:
    text_path, mmproj_path = Path(text_path), Path(mmproj_path)
    text = check_text(text_path)
    vision = check_mmproj(mmproj_path)
    if text["architecture"] not in PROJECTOR_TEXT_ARCHITECTURES[vision["projector"]]:
        raise ModelFileError(
            f"{mmproj_path.name} is a {vision['projector']!r} projector, which does not belong with the "
            f"{text['architecture']!r} text model {text_path.name}"
        )
    if vision["projector_output"] != text["hidden_size"]:
        raise ModelFileError(
            f"{mmproj_path.name} projects images to width {vision['projector_output']} but {text_path.name} has "
            f"hidden size {text['hidden_size']}: these two files do not belong together"
        )
    if vision["projector"] == "mlp":
        image_tokens = (vision["image_size"] // vision["patch_size"]) ** 2
    else:  # an image takes as many tokens as its size gives, up to the pixel budget
        image_tokens = manifest.image_tokens if manifest is not None else QWEN25VL_DEFAULT_MAX_TOKENS
    family = BY_PROJECTOR[vision["projector"]]
    if manifest is not None and manifest.family != family:
        raise ModelFileError(f"the manifest says family {manifest.family!r} but {mmproj_path.name} is a "
                             f"{vision['projector']!r} projector, which is {family!r}")
    return PairInfo(
        text_path=text_path, mmproj_path=mmproj_path, architecture=text["architecture"],
        context_length=text["context_length"], hidden_size=text["hidden_size"], n_layers=text["n_layers"],
        n_kv_heads=text["n_kv_heads"], head_dim=text["head_dim"], image_size=vision["image_size"],
        image_tokens=image_tokens, text_bytes=text_path.stat().st_size, mmproj_bytes=mmproj_path.stat().st_size,
        projector=vision["projector"], family=family,
        image_min_pixels=manifest.image_min_pixels if manifest is not None else None,
        image_max_pixels=manifest.image_max_pixels if manifest is not None else None,
    )


def check_folder(folder: str | Path, verify_hashes: bool = True, rehash: bool = False) -> PairInfo:
    """A converted model folder (manifest.json + the two files it names), checked against its manifest.

    A file is hashed only when it is not recorded as verified with its present identity (verified.py), or with
    `rehash` (the user asked for a full check); a file that matches is then recorded, so the next load reads none
    of its content."""
    folder = Path(folder)
    try:
        manifest = Manifest.read(folder)
    except FileNotFoundError:
        raise ModelFileError(f"{folder}: no manifest.json (pick the two GGUF files by hand instead)") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(f"{folder}/manifest.json is unreadable ({exc})") from None
    text_path, mmproj_path = manifest.paths(folder)
    try:
        pair = check_pair(text_path, mmproj_path, manifest)
        if verify_hashes:
            for path, entry in ((text_path, manifest.text), (mmproj_path, manifest.mmproj)):
                check_hash(folder, path, entry, rehash)
    except ModelFileError as exc:  # models share file names: say which model
        raise ModelFileError(f"model {folder.name}: {exc}") from None
    return replace(pair, sha256=(manifest.text.sha256, manifest.mmproj.sha256)) if verify_hashes else pair


def check_hash(folder: Path, path: Path, entry: ModelFile, rehash: bool = False) -> None:
    """The file is the one the manifest names: same size, and the same SHA-256 (hashed or recorded)."""
    identity = file_identity(path)
    if identity["size"] != entry.size_bytes:
        raise ModelFileError(f"{path.name}: {identity['size']:,} bytes, the manifest says {entry.size_bytes:,}")
    if not rehash and is_verified(folder, path, entry.sha256):
        return
    if sha256_file(path) != entry.sha256:
        raise ModelFileError(f"{path.name}: its SHA-256 does not match the manifest (the file was changed)")
    if file_identity(path) == identity:  # not written to while it was read
        record_verified(folder, path, entry.sha256, identity)
