"""What answers the questions: a converted GGUF model through the engine, or a checkpoint in transformers.

Both take one conversation per item (the user turn with its images, as the prompt format defines it) and
return the reply stripped, as the released chatbot returns it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from inference import prompt


@dataclass
class Reply:
    text: str
    finish: str  # stop | length | cancelled | context_full
    generated_tokens: int
    seconds: float


class EngineBackend:
    """A converted model folder (manifest.json + text GGUF + mmproj GGUF) in the engine's worker process."""

    def __init__(self, folder: str | Path, threads: int | None = None, ctx: int | None = None, gpu_layers: int = 0):
        from inference.engine import Engine, EngineSettings
        from inference.store.manifest import Manifest

        self.folder = Path(folder)
        self.engine = Engine.from_folder(self.folder, EngineSettings(n_ctx=ctx, n_threads=threads,
                                                                    n_gpu_layers=gpu_layers))
        manifest = Manifest.read(self.folder)
        self.label = Path(manifest.text.file).stem
        self.identity = {"kind": "gguf", "name": manifest.name,
                         "quantization": manifest.text.quantization, "text_sha256": manifest.text.sha256,
                         "mmproj_sha256": manifest.mmproj.sha256}
        self.calls = 0

    def start(self) -> None:
        self.engine.start()  # the worker ignores Ctrl-C: this process's loop stops and cancels the request

    def answer(self, question: str, images: Sequence[Path], sampling) -> Reply:
        self.calls += 1
        self.start()  # a no-op while the worker lives; after a crash it restarts it the same way
        prepared = [self.engine.prepare_image(path) for path in images]
        started = time.perf_counter()
        answer = self.engine.ask([prompt.Turn(question, len(prepared))], prepared, sampling)
        return Reply(answer.text.strip(), answer.finish,
                     int(answer.timings.get("generated_tokens", len(answer.token_ids))), time.perf_counter() - started)

    def cancel(self) -> None:
        self.engine.cancel()

    def close(self) -> None:
        self.engine.close()


class ReferenceBackend:
    """A checkpoint folder in transformers (the `dev` extra), as the released evaluation runs it: greedy through
    `greedy_reference`, or sampling with transformers' generate from input embeddings, where the repetition
    penalty sees only the generated tokens and at least one token is generated (``min_new_tokens=1``)."""

    def __init__(self, checkpoint: str | Path, threads: int | None = None):
        import torch

        from conversion.checkpoint import Checkpoint
        from conversion.reference import load_reference
        from conversion.tokenizer import reference_tokenizer

        if threads:
            torch.set_num_threads(threads)
        self.ckpt = Checkpoint(checkpoint)
        self.model = load_reference(self.ckpt)
        self.tokenize, _, _ = reference_tokenizer(self.ckpt.path, self.ckpt.text.family)
        self.decode = _decoder(self.ckpt)
        cfg = self.ckpt.config.get("text_config", self.ckpt.config) if self.ckpt.layout == "hf" else self.ckpt.config
        eos = cfg.get("eos_token_id")
        self.eos_ids = list(eos) if isinstance(eos, list) else [eos]
        self.label = "reference-" + self.ckpt.path.name
        self.identity = {"kind": "reference", **self.ckpt.identity()}
        self.calls = 0

    def start(self) -> None:
        pass

    def answer(self, question: str, images: Sequence[Path], sampling) -> Reply:
        from PIL import Image

        from conversion.reference import greedy_reference
        from inference.imageprep import prepare

        self.calls += 1
        size = self.ckpt.vision.image_size
        pictures = iter(prepare(Image.open(path), size) for path in images)
        text = prompt.render([prompt.Turn(question, len(images))])
        pieces: list = []
        for i, part in enumerate(text.split(prompt.IMAGE_PLACEHOLDER)):
            if i:
                pieces.append(next(pictures))
            if part:
                pieces.append(part)
        started = time.perf_counter()
        if sampling.greedy:
            ids = greedy_reference(self.model, pieces, self.tokenize, sampling.max_new_tokens, self.eos_ids)
            stopped = len(ids) < sampling.max_new_tokens
        else:
            ids, stopped = self._sample(pieces, sampling)
        return Reply(self.decode(ids).strip(), "stop" if stopped else "length", len(ids), time.perf_counter() - started)

    def _sample(self, pieces, sampling) -> tuple[list[int], bool]:
        import torch

        from conversion.reference import image_features

        embed = self.model.get_input_embeddings()
        torch.manual_seed(sampling.seed)
        with torch.no_grad(), warnings.catch_warnings():
            # transformers warns that the penalty then skips the prompt: exactly what the released code does
            warnings.filterwarnings("ignore", message="Passing `repetition_penalty` with `inputs_embeds`")
            inputs = torch.cat([embed(torch.tensor(self.tokenize(p))) if isinstance(p, str) else image_features(
                self.model, p) for p in pieces])[None]
            output = self.model.generate(
                inputs_embeds=inputs, attention_mask=torch.ones(inputs.shape[:2], dtype=torch.long), do_sample=True,
                temperature=sampling.temperature, top_k=sampling.top_k, repetition_penalty=sampling.repetition_penalty,
                max_new_tokens=sampling.max_new_tokens, min_new_tokens=1, eos_token_id=self.eos_ids,
                pad_token_id=self.eos_ids[0],
            )
        ids = [int(t) for t in output[0]]
        stopped = bool(ids) and ids[-1] in self.eos_ids
        while ids and ids[-1] in self.eos_ids:
            ids.pop()
        return ids, stopped

    def cancel(self) -> None:
        pass  # generate() cannot be interrupted; Ctrl-C ends it between items

    def close(self) -> None:
        pass


def _decoder(ckpt):
    """Token ids to text with special tokens skipped, as the released chatbot decodes."""
    if ckpt.text.family == "llama":
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(ckpt.path / "tokenizer.model"))
        return lambda ids: sp.decode([i for i in ids if i < sp.get_piece_size() and not sp.is_control(i)])
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ckpt.path)
    return lambda ids: tokenizer.decode(ids, skip_special_tokens=True)
