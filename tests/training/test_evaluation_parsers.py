"""The evaluation's prompt, its two answer parsers, the statistics and the benchmark file checks (no model)."""

import json

import pytest

from tests.support.evaluation_data import write_benchmark
from training.evaluation import benchmark, official, stats, strict

OPTIONS = ["Liver", "Lung", "Heart", "Kidney"]  # A B C D

# reply, the released parser's letter (as written; None = the released scorer would fail), the strict letter
REPLIES = [
    ("A", "A", "A"),
    ("(B)", "B", "B"),
    ("B.", "B", "B"),
    ("A\n", "A", "A"),
    ("**C**", "C", "C"),
    ('"C"', "C", "C"),
    ("The answer is C.", "C", "C"),
    ("答案是D", "D", "D"),
    ("答案为B", "B", "B"),
    ("答案：C", "C", "C"),
    ("选B", None, "B"),  # 选 is a word character and not among the regex's prefixes
    ("B. Lung", "B", "B"),
    ("C: Heart", "C", "C"),
    ("Option (D) Kidney", "D", "D"),
    ("B. Liver", "B", None),  # the letter and the option text disagree
    ("Lung", None, "B"),  # option text without a letter
    ("It is the lung.", None, "B"),
    ("Kidney.", None, "D"),
    ("A lung nodule", None, "B"),  # "A " is skipped by the released regex; for the strict parser it is the article
    ("heart and lung", None, None),  # two options' texts
    ("A or B", "B", None),  # "A " is skipped, so the released parser reads B
    ("B or C", "B", None),
    ("The answer is B or C", "B", None),
    ("Both A and C", "C", None),
    ("I think B", "I", "B"),  # the published quirk: the pronoun is read as option I
    ("I think the answer is B", "I", "B"),
    ("I don't know", "I", None),
    ("c", "c", "C"),  # lowercase: found, but compared case-sensitively by the released scorer
    ("(b)", "b", "B"),
    ("The answer is c", "c", "C"),
    ("E", "E", None),  # beyond the four options
    ("The answer is E", "E", None),
    ("", None, None),
    ("None of the above.", None, None),
]


@pytest.mark.parametrize(("reply", "official_letter", "strict_letter"), REPLIES)
def test_parsers_on_real_style_replies(reply, official_letter, strict_letter):
    assert official.parse_letter(reply) == official_letter
    assert strict.parse(reply, OPTIONS).letter == strict_letter


def test_official_scoring_is_exact_and_case_sensitive():
    assert official.is_correct("C", "C")
    assert not official.is_correct("c", "C")  # a lowercase letter never counts
    assert not official.is_correct(None, "C")
    assert not official.is_correct("A", None)  # an answer of "?" is never right


def test_strict_reasons_explain_rejections():
    assert strict.parse("B. Liver", OPTIONS).reason == "ambiguous: B with the text of A"
    assert strict.parse("E", OPTIONS).reason == "no option E"
    assert strict.parse("Both A and C", OPTIONS).reason == "ambiguous: A, C"
    # letters inside an option's own words are not letters
    assert strict.parse("Vitamin D deficiency", ["Anemia", "Vitamin D deficiency", "Gout"]).letter == "B"
    # an option inside a longer named option does not count
    assert strict.parse("lung cancer", ["Lung", "Lung cancer"]).letter == "B"


def test_prompt_is_the_released_one():
    text = official.user_text("  What organ is this?", OPTIONS, n_images=0)
    assert text == ("What organ is this?\nA. Liver\nB. Lung\nC. Heart\nD. Kidney\n"
                    "Answer with the option's letter from the given choices directly.")
    # with images only trailing whitespace is stripped (the markers come first), and image tags are removed
    assert official.user_text("  See <image> here", ["x", "y"], 1).startswith("  See  here\nA. x\nB. y\n")
    many = [f"o{i}" for i in range(13)]
    assert "K. o10" in official.query("q", many) and "o11" not in official.query("q", many)


def test_wilson_interval():
    low, high = stats.wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = stats.wilson(50, 100)
    assert (low, high) == (pytest.approx(0.4038, abs=1e-4), pytest.approx(0.5962, abs=1e-4))
    assert stats.wilson(10, 10) == (pytest.approx(0.7225, abs=1e-4), pytest.approx(1.0))
    assert stats.wilson(0, 0) == (0.0, 1.0)


def test_mcnemar_exact():
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(5, 5) == 1.0
    assert stats.mcnemar_exact(0, 10) == pytest.approx(2 / 1024)


def test_benchmark_file_is_read_as_the_released_loader_reads_it(tmp_path):
    path = write_benchmark(tmp_path, per_benchmark=3)
    bench = benchmark.load(path)
    assert bench.skipped == 1  # the open question
    assert bench.datasets == ["VQA-RAD_test", "SLAKE_test", "PathVQA_test", "PMC-VQA_test", "OmniMedVQA",
                              "MMMU_Medical_Validation"]
    assert [i.id for i in bench.items] == list(range(1, 19))  # the released test_id: position in the file
    literal = next(i for i in bench.items if i.id == 2)  # options given as a Python literal string
    assert isinstance(literal.options, tuple) and literal.answer_label in "ABCD"
    assert any(i.answer_label is None for i in bench.items)  # the "?" answer
    assert any(len(i.images) == 2 for i in bench.items)

    picked = benchmark.select(bench, ["vqa-rad", "MMMU"], limit=2)
    assert [i.dataset for i in picked] == ["VQA-RAD_test"] * 2 + ["MMMU_Medical_Validation"] * 2
    assert benchmark.select(bench, ["OmniMedVQA"])[0].subset == "X-Ray"
    assert benchmark.short_name("PMC-VQA_test") == "pmc-vqa"


def test_benchmark_errors_name_the_problem(tmp_path):
    path = write_benchmark(tmp_path, per_benchmark=1)
    bench = benchmark.load(path)
    with pytest.raises(benchmark.BenchmarkError, match="no benchmark matches 'vqa-med'.*VQA-RAD_test"):
        benchmark.select(bench, ["vqa-med"])
    (tmp_path / "images" / "0000.png").unlink()
    with pytest.raises(benchmark.BenchmarkError, match=r"1 image file\(s\) not found .*0000.png.*--images"):
        benchmark.select(bench)
    assert benchmark.select(benchmark.load(path, tmp_path), ["slake"])  # other items are still usable

    rows = json.loads(path.read_text())
    rows[2]["answer"] = "Pancreas"
    path.write_text(json.dumps(rows))
    with pytest.raises(benchmark.BenchmarkError, match="item 3 .*'Pancreas' is not one of its options"):
        benchmark.load(path)
    path.write_text("{not json")
    with pytest.raises(benchmark.BenchmarkError, match="not valid JSON"):
        benchmark.load(path)
    with pytest.raises(benchmark.BenchmarkError, match="cannot read"):
        benchmark.load(tmp_path / "missing.json")


def test_wilson_and_mcnemar_agree_with_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for correct, n in [(0, 7), (3, 7), (57, 100), (990, 1000), (451, 451)]:
        ci = scipy_stats.binomtest(correct, n).proportion_ci(method="wilson")
        assert stats.wilson(correct, n) == (pytest.approx(ci.low, abs=1e-9), pytest.approx(ci.high, abs=1e-9))
    for only_a, only_b in [(3, 9), (12, 4), (1, 0)]:
        expected = scipy_stats.binomtest(only_a, only_a + only_b, 0.5).pvalue
        assert stats.mcnemar_exact(only_a, only_b) == pytest.approx(expected)


def test_reports_and_comparison_from_scored_replies(tmp_path):
    """Known replies through the scoring, report and comparison code: the counts are checkable by hand."""
    from training.evaluation.protocol import Protocol
    from training.evaluation.report import compare, comparison_markdown, write_report
    from training.evaluation.runner import RunStore

    bench = benchmark.load(write_benchmark(tmp_path / "data", per_benchmark=4))
    items = [i for i in bench.items if i.dataset == "SLAKE_test" and i.answer_label]
    assert len(items) == 4
    protocol = Protocol("official")
    right = [item.answer_label for item in items]
    replies = {"a": right[:3] + ["I think so"], "b": [f"The answer is {right[0]}.", "none", right[2], right[3]]}
    folders = {}
    for run, texts in replies.items():
        store = RunStore(tmp_path / run)
        store.open({"label": run, "model": {"kind": "gguf", "name": run}, "data": str(bench.path),
                    "data_sha256": bench.sha256, "settings": protocol.settings()})
        with store.append_to() as out:
            for item, text in zip(items, texts, strict=True):
                record = {"id": item.id, "item": item.sha, "dataset": item.dataset, "subset": item.subset,
                          "answer": item.answer_label, "reply": text, **protocol.score(text, item)}
                out.write(json.dumps(record) + "\n")
        folders[run] = store.folder
        report = write_report(store.folder)
        slake = report["benchmarks"]["SLAKE_test"]
        assert (slake["n"], slake["correct"], slake["unparsed"]) == (4, 3, 1 if run == "b" else 0)
        assert slake["accuracy"] == 0.75 and slake["ci_low"] < 0.75 < slake["ci_high"]
        assert "| SLAKE_test | 4 | 75.0 |" in (store.folder / "report.md").read_text()

    row = compare(folders["a"], folders["b"])["benchmarks"]["SLAKE_test"]
    assert (row["both_right"], row["only_a_right"], row["only_b_right"], row["both_wrong"]) == (2, 1, 1, 0)
    assert row["difference"] == 0.0 and row["within_ci"] and row["mcnemar_p"] == 1.0
    assert row["same_letter"] == 2  # "I think so" reads as I; "none" as nothing
    assert "| SLAKE_test | 4 | 75.0 (" in comparison_markdown(compare(folders["a"], folders["b"]))
