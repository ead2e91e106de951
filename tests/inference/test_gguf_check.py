"""Bad model files are refused with a message naming the file and the problem, before llama.cpp sees them."""

import shutil

import gguf
import numpy as np
import pytest

from inference.store.gguf_check import ModelFileError, check_folder, check_pair, check_text
from inference.store.manifest import Manifest


def _pair(folder):
    return Manifest.read(folder).paths(folder)


def test_a_good_pair_is_described(converted):
    info = check_folder(converted("qwen2", "original", "Q8_0"))
    assert info.architecture == "qwen2" and info.hidden_size == 256 and info.image_tokens == 64


def test_truncated_text_model(converted, tmp_path):
    text, mmproj = _pair(converted("qwen2", "original", "F16"))
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(text.read_bytes()[: text.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="cut.gguf is (damaged or )?truncated"):
        check_pair(cut, mmproj)


def test_swapped_files(converted):
    text, mmproj = _pair(converted("qwen2", "original", "F16"))
    with pytest.raises(ModelFileError, match="is a vision projector"):
        check_pair(mmproj, text)


def test_not_a_gguf(tmp_path, converted):
    _, mmproj = _pair(converted("qwen2", "original", "F16"))
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"<html>404</html>")
    with pytest.raises(ModelFileError, match="model.gguf is not a GGUF file"):
        check_pair(fake, mmproj)


def _rewrite(src, dst, change):
    """Copy a GGUF, letting change(key, field_value, type) return a replacement (key, value, type) or None."""
    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(dst, arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        replaced = change(key, field.contents(), kind, sub)
        if replaced is None:
            continue
        key, value, kind, sub = replaced
        writer.add_key_value(key, value, kind, sub_type=sub)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, tensor.data, raw_shape=list(reversed(tensor.shape.tolist())),
                          raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_mistyped_key_would_abort_llama_cpp(converted, tmp_path):
    text, mmproj = _pair(converted("qwen2", "original", "F16"))
    bad = tmp_path / "mmproj.gguf"

    def int32_block_count(key, value, kind, sub):
        if key == "clip.vision.block_count":
            return key, value, gguf.GGUFValueType.INT32, None
        return key, value, kind, sub

    _rewrite(mmproj, bad, int32_block_count)
    with pytest.raises(ModelFileError, match="clip.vision.block_count is stored as INT32, llama.cpp needs UINT32"):
        check_pair(text, bad)


def test_missing_rope_base_would_give_wrong_logits(converted, tmp_path):
    text, mmproj = _pair(converted("qwen2", "original", "F16"))
    bad = tmp_path / "text.gguf"
    _rewrite(text, bad, lambda k, v, t, s: None if k == "qwen2.rope.freq_base" else (k, v, t, s))
    with pytest.raises(ModelFileError, match="qwen2.rope.freq_base is missing"):
        check_pair(bad, mmproj)


def test_mismatched_pair(converted, tmp_path):
    from dataclasses import replace

    from conversion.convert import convert
    from conversion.shapes import TINY
    from tests.support.checkpoints import build_checkpoint

    wide = build_checkpoint(tmp_path / "wide", "qwen2", "original", replace(TINY, hidden_size=512, n_heads=8))
    convert(wide, tmp_path / "wide-gguf", "F16")
    text, _ = _pair(converted("qwen2", "original", "F16"))
    _, wide_mmproj = _pair(tmp_path / "wide-gguf")
    with pytest.raises(ModelFileError, match="width 512 but .* hidden size 256: these two files do not belong"):
        check_pair(text, wide_mmproj)


def test_changed_file_fails_the_manifest_hash(converted, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(converted("qwen2", "original", "F16"), folder)
    text, _ = _pair(folder)
    data = bytearray(text.read_bytes())
    data[-10] ^= 0xFF
    text.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="SHA-256 does not match the manifest"):
        check_folder(folder)


def test_a_file_truncated_while_it_is_checked_gives_an_error_not_a_bus_error(converted, tmp_path):
    """The check reads the header into memory: cutting the file short afterwards (another program replacing the
    model) cannot fault a mapped page in this process, and the next check names the damage."""
    from inference.store.gguf_check import HeaderReader

    folder = tmp_path / "m"
    shutil.copytree(converted("qwen2", "original", "F32"), folder)
    text = folder / Manifest.read(folder).text.file
    reader = HeaderReader.read(text)
    reference = gguf.GGUFReader(text)
    assert [(t.name, t.tensor_type, t.data_offset, t.n_bytes) for t in reader.tensors] == [
        (t.name, t.tensor_type, t.data_offset, t.n_bytes) for t in reference.tensors]
    assert reader.fields.keys() == reference.fields.keys()
    del reference
    with open(text, "r+b") as f:
        f.truncate(reader.data_offset // 2)  # inside the header: what was read stays readable
    assert reader.fields["general.architecture"].parts[-1].tobytes() == b"qwen2"
    with pytest.raises(ModelFileError, match="damaged or truncated"):
        check_text(text)


def test_a_header_longer_than_the_first_read_is_read_whole(converted, monkeypatch):
    from inference.store.gguf_check import HeaderReader

    text, _ = _pair(converted("qwen2", "original", "F32"))
    whole = check_text(text)
    monkeypatch.setattr(HeaderReader, "FIRST_READ", 64)  # far shorter than the vocabulary: read again, 4x longer
    assert check_text(text) == whole
    reader = HeaderReader.read(text)
    assert list(reader.fields["tokenizer.ggml.tokens"].data) == list(gguf.GGUFReader(text).fields[
        "tokenizer.ggml.tokens"].data)
    beyond = [t for t in reader.tensors if t.data_offset + t.n_bytes > len(reader.data)]
    assert beyond and all(set(np.asarray(t.data).strides) == {0} for t in beyond)  # no memory, never read


@pytest.mark.parametrize("flavour", [("qwen2", "original", "F32"), ("llama", "hf", "Q4_K_M")])
def test_the_header_reader_reads_every_field_as_gguf_reads_it(converted, flavour):
    """It walks arrays (a vocabulary, its merges and token types) itself, for speed: the same fields, types, parts
    and values as gguf's own reader, for both files of a pair."""
    from inference.store.gguf_check import HeaderReader

    for path in _pair(converted(*flavour)):
        ours, reference = HeaderReader.read(path), gguf.GGUFReader(path)
        assert ours.fields.keys() == reference.fields.keys()
        for key, field in ours.fields.items():
            expected = reference.fields[key]
            assert field.types == expected.types and list(field.data) == list(expected.data), key
            assert [(p.dtype, p.shape, p.tobytes()) for p in field.parts] == [
                (p.dtype, p.shape, p.tobytes()) for p in expected.parts], key
            assert field.contents() == expected.contents(), key
        assert [(t.name, t.tensor_type, t.data_offset, t.n_bytes) for t in ours.tensors] == [
            (t.name, t.tensor_type, t.data_offset, t.n_bytes) for t in reference.tensors]
