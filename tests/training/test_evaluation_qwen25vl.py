"""`huatuo eval` with a converted Qwen2.5-VL model: the engine asks each question in the release's chat template
with the images at their own size, and the replies are transformers' greedy ones for that prompt."""

import json

from PIL import Image

from inference.store.manifest import Manifest
from tests.support.evaluation_data import write_benchmark
from training.evaluation import benchmark, official
from training.evaluation.cli import main


def test_eval_runs_a_qwen25vl_model_with_its_own_prompt(qwen25vl_checkpoint, qwen25vl_converted, tmp_path, capsys):
    from transformers import AutoTokenizer

    from conversion.qwen25vl import Qwen25VLCheckpoint
    from conversion.qwen25vl_reference import load_reference
    from conversion.qwen25vl_verify import greedy_reference
    from inference import prompt
    from inference.native import NativeModel

    data = write_benchmark(tmp_path / "benchmark", per_benchmark=1)
    out = tmp_path / "runs"
    code = main(["--data", str(data), "--model", str(qwen25vl_converted), "--out", str(out), "--protocol",
                 "deterministic", "--max-tokens", "6", "--limit", "1", "--bench", "slake", "--threads", "1", "--json"])
    assert code == 0, capsys.readouterr().err
    [record] = [json.loads(line) for line in next(out.glob("*.deterministic")).joinpath("results.jsonl")
                .read_text().splitlines()]
    item = next(i for i in benchmark.load(data).items if i.id == record["id"])

    # transformers' greedy reply to the same question in the release's chat template
    ckpt = Qwen25VLCheckpoint(qwen25vl_checkpoint)
    question = official.user_text(item.question, item.options, len(item.images))
    text = prompt.render_chat_template(ckpt.chat_template, [prompt.Turn(question, len(item.images))],
                                       image_marker="\0")
    pieces = [p for part in text.split("\0") for p in (part, None)][:-1]
    native = NativeModel(str(Manifest.read(qwen25vl_converted).paths(qwen25vl_converted)[0]), None, n_ctx=64)
    try:
        eos = [t for t in range(native.n_vocab) if native.is_end_of_generation(t)]
        originals = [Image.open(path) for path in item.images]
        ids = greedy_reference(load_reference(ckpt), ckpt, AutoTokenizer.from_pretrained(ckpt.path), pieces,
                               originals, 6, eos)
        assert ids and record["reply"] == native.detokenize(ids).decode("utf-8", "replace").strip()
    finally:
        native.close()
