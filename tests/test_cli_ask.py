"""`huatuo ask` and `huatuo chat` with PNG and DICOM images."""

import json
import subprocess
import sys

import pytest
from pydicom.data import get_testdata_file

from conversion.verify import sample_image


def _huatuo(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=300,
                          input=stdin)


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "xray.png"
    sample_image().save(path)
    return path


def test_ask_json_reports_timings(converted, png):
    done = _huatuo("ask", "--model", str(converted("qwen2", "original", "Q8_0")), "--image", str(png),
                   "--greedy", "--max-tokens", "12", "--json", "What is shown? 这是什么？")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["finish"] in ("stop", "length") and report["ttft_s"] > 0
    assert "tokens_per_s" in report
    # The image is read once, before the question (so that it is saved for the next question about it).
    assert report["prepared"]["images_encoded"] == 1 and report["timings"]["images_encoded"] == 0


def test_ask_about_a_dicom_file(converted):
    ct = get_testdata_file("CT_small.dcm")
    done = _huatuo("ask", "--model", str(converted("qwen2", "original", "Q8_0")), "--image", ct,
                   "--max-tokens", "8", "Describe this CT slice.")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_ask_with_a_broken_model_folder_is_one_clear_error(tmp_path, png):
    done = _huatuo("ask", "--model", str(tmp_path), "--image", str(png), "What?")
    assert done.returncode == 1 and done.stderr.startswith("error:") and "manifest.json" in done.stderr


def test_chat_keeps_the_conversation(converted, png):
    script = "What is this?\nAnd the left side?\n/regen\n/quit\n"
    done = _huatuo("chat", "--model", str(converted("qwen2", "original", "Q8_0")), "--image", str(png),
                   "--greedy", "--max-tokens", "6", "--json", stdin=script)
    assert done.returncode == 0, done.stderr
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 3
    assert reports[1]["timings"]["images_encoded"] == 0  # the follow-up reused the image
    assert reports[2]["answer"] == reports[1]["answer"]  # greedy regenerate gives the same answer
    assert reports[2]["timings"]["prompt_tokens"] <= 2


def test_a_missing_or_broken_image_is_one_clear_error(converted, tmp_path, png):
    model = str(converted("qwen2", "original", "Q8_0"))
    done = _huatuo("ask", "--model", model, "--image", str(tmp_path / "missing.png"), "What?")
    assert done.returncode == 1 and done.stderr.startswith("error:") and "Traceback" not in done.stderr
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    script = f"/image {broken}\n/image {png}\nWhat is this?\n/quit\n"
    done = _huatuo("chat", "--model", model, "--greedy", "--max-tokens", "4", "--json", stdin=script)
    assert done.returncode == 0, done.stderr
    assert "error:" in done.stderr and "broken.png" in done.stderr  # said, and the chat went on
    [report] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    # Exactly the one good image reached the model (read while the question came in, or with it).
    alone = _huatuo("ask", "--model", model, "--image", str(png), "--greedy", "--max-tokens", "4", "--json",
                    "What is this?")
    one_image = json.loads(alone.stdout.splitlines()[-1])["timings"]
    t = report["timings"]
    assert t["reused_tokens"] + t["prompt_tokens"] == one_image["reused_tokens"] + one_image["prompt_tokens"]
    assert report["answer"] == json.loads(alone.stdout.splitlines()[-1])["answer"]


def _reports(done) -> list[dict]:
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _prompt_length(report: dict) -> int:
    """Every token the model had in front of it for this answer: reused from the cache or processed now."""
    return report["timings"]["reused_tokens"] + report["timings"]["prompt_tokens"]


def test_chat_edit_replaces_the_last_question_and_new_starts_over(converted, png):
    model = str(converted("qwen2", "original", "Q8_0"))
    edited = "Describe the left lung field in detail, please."
    script = f"What is this?\n/edit {edited}\n/new\n/image {png}\n{edited}\n/quit\n"
    done = _huatuo("chat", "--model", model, "--image", str(png), "--greedy", "--max-tokens", "6", "--json",
                   stdin=script)
    assert done.returncode == 0, done.stderr
    first, after_edit, after_new = _reports(done)
    alone = _huatuo("ask", "--model", model, "--image", str(png), "--greedy", "--max-tokens", "6", "--json", edited)
    assert alone.returncode == 0, alone.stderr
    [one_question] = _reports(alone)
    # /edit: the edited question replaces the first one (no earlier turn is left in front of it), and the cache is
    # rolled back only to where the conversation changed: the image is not encoded again.
    assert _prompt_length(after_edit) == _prompt_length(one_question) != _prompt_length(first)
    assert after_edit["timings"]["images_encoded"] == 0 and after_edit["timings"]["reused_tokens"] > 0
    assert after_edit["answer"] == one_question["answer"]
    # /new: nothing of the earlier conversation is left; the same image and question give the same greedy answer.
    assert _prompt_length(after_new) == _prompt_length(one_question)
    assert after_new["answer"] == one_question["answer"]
