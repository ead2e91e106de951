"""The `huatuo` command as a user runs it."""

import json
import subprocess
import sys


def _huatuo(*args):
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=600)


def test_convert_then_verify_json(tiny_checkpoints, tmp_path):
    src = tiny_checkpoints("qwen2", "hf")
    out = tmp_path / "model"
    done = _huatuo("convert", str(src), str(out), "--quant", "F32")
    assert done.returncode == 0, done.stderr
    assert (out / "manifest.json").is_file()
    verified = _huatuo("verify", str(src), str(out), "--json")
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    for key in ("tokenization_mismatches", "logits_max_abs_diff", "top1_agreement", "image_cosine_min",
                "image_cosine_mean", "greedy_match"):
        assert key in report
    assert report["greedy_match"] is True and report["tokenization_mismatches"] == 0


def test_convert_error_is_one_clear_line(tmp_path):
    (tmp_path / "empty").mkdir()
    done = _huatuo("convert", str(tmp_path / "empty"), str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stderr.startswith("error:") and "config.json" in done.stderr


def test_a_file_alone_opens_it_in_the_app(monkeypatch, tmp_path, capsys):
    import pytest

    import app.cli

    opened = []
    monkeypatch.setattr(app.cli, "run_gui", lambda args: opened.append(getattr(args, "paths", [])) or 0)
    scan = tmp_path / "IM0001"  # a DICOM file without an extension, as scanners write them
    scan.write_bytes(b"\0" * 132)
    assert app.cli.main([str(scan)]) == 0
    assert app.cli.main([str(tmp_path), str(tmp_path / "not-yet.dcm")]) == 0  # a folder; a file that is not there
    assert app.cli.main([]) == 0
    assert app.cli.main(["gui", str(scan)]) == 0
    assert opened == [[str(scan)], [str(tmp_path), str(tmp_path / "not-yet.dcm")], [], [str(scan)]]
    with pytest.raises(SystemExit) as usage:  # a mistyped command is still reported as one
        app.cli.main(["covnert", "a", "b"])
    assert usage.value.code == 2 and "invalid choice: 'covnert'" in capsys.readouterr().err
    assert len(opened) == 4


def test_converting_again_removes_the_last_verification_of_the_earlier_files(tiny_checkpoints, tmp_path):
    from inference.store.models import VERIFICATION_NAME
    from inference.store.verified import VERIFIED_NAME

    def stamped_as_in_manifest():
        manifest = json.loads((out / "manifest.json").read_text())
        stamps = json.loads((out / VERIFIED_NAME).read_text())["files"]
        return {name: stamp["sha256"] for name, stamp in stamps.items()} == \
            {manifest[kind]["file"]: manifest[kind]["sha256"] for kind in ("text", "mmproj")}

    src = tiny_checkpoints("qwen2", "hf")
    out = tmp_path / "model"
    assert _huatuo("convert", str(src), str(out), "--quant", "F32").returncode == 0
    assert stamped_as_in_manifest()  # hashed while converted: its first load need not read the files again
    earlier = {"format": 1, "passed": True, "quantization": "F32"}  # what `huatuo verify` left for the F32 files
    (out / VERIFICATION_NAME).write_text(json.dumps(earlier))
    (out / "notes.txt").write_text("mine")
    done = _huatuo("convert", str(src), str(out), "--quant", "F16")
    assert done.returncode == 0, done.stderr
    assert not (out / VERIFICATION_NAME).exists()
    assert stamped_as_in_manifest()  # the F16 files only: no stamp of the replaced F32 file is left
    assert (out / "notes.txt").read_text() == "mine"  # only what described the earlier files goes
