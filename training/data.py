"""Supervised multimodal data: LLaVA-558K/665K and PubMedVision JSON records -> token ids, labels, pixels.

A record is ``{"id", "image": path | [paths], "conversations": [{"from": "human"|"gpt", "value"}, ...]}``.
Images are placed as the paper does: one ``<image>`` per image at the start of the user turn (PubMedVision's
human turns carry no tag, so one per image is prepended to the first; LLaVA's tags are moved to the start).
The prompt format is `inference.prompt`'s; only the answers (and the final end-of-text) are learned.
Records are decoded and images read lazily, one sample at a time, in the loader's workers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inference import prompt
from inference.imageprep import normalise, prepare

from .config import DatasetSpec
from .model import IGNORE_INDEX, IMAGE_TOKEN_INDEX

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # loader workers are forked processes


class DataError(ValueError):
    """A record or file that cannot be used; the message names the file and the record."""


# --- tokenizer --------------------------------------------------------------------------------
@dataclass
class TextTokenizer:
    """Text -> ids without special tokens added, as the model is prompted; plus the ids training needs."""

    encode: Callable[[str], list[int]]
    decode: Callable[[Sequence[int]], str]
    eos_id: int
    pad_id: int


def load_tokenizer(folder: Path, family: str, eos_id: int | None) -> TextTokenizer:
    """Byte-level BPE through transformers; Llama-family (SentencePiece) through `conversion.tokenizer`, the
    reference, which is what the converted model in llama.cpp does."""
    from transformers import AutoTokenizer

    from conversion.tokenizer import reference_tokenizer

    fast = AutoTokenizer.from_pretrained(folder)
    if family == "llama":
        encode, _, _ = reference_tokenizer(Path(folder), family)
    else:
        def encode(text: str) -> list[int]:
            return fast(text, add_special_tokens=False).input_ids
    eos = eos_id if eos_id is not None else fast.eos_token_id
    if eos is None:
        raise DataError(f"{folder}: the tokenizer and the model config name no end-of-text token")
    pad = fast.pad_token_id if fast.pad_token_id is not None else eos
    return TextTokenizer(encode, lambda ids: fast.decode(list(ids)), int(eos), int(pad))


# --- records ----------------------------------------------------------------------------------
class RecordStore:
    """All records as one byte buffer plus offsets: compact, and shared by forked loader workers without
    per-object reference counts copying the pages."""

    def __init__(self, specs: Sequence[DatasetSpec], max_images: int | None = None):
        self.specs = list(specs)
        if not self.specs:
            raise DataError("the configuration lists no datasets (data.datasets)")
        chunks: list[bytes] = []
        offsets = [0]
        owner: list[int] = []
        self.skipped = 0
        for number, spec in enumerate(self.specs):
            for row in _read_rows(Path(spec.json)):
                if max_images is not None and len(_image_list(row)) > max_images:
                    self.skipped += 1
                    continue
                blob = json.dumps(row, ensure_ascii=False).encode("utf-8")
                chunks.append(blob)
                offsets.append(offsets[-1] + len(blob))
                owner.append(number)
        self._data = np.frombuffer(b"".join(chunks), dtype=np.uint8)
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._owner = np.asarray(owner, dtype=np.int32)
        if not len(self):
            raise DataError(f"no usable records in {', '.join(s.json for s in self.specs)}")

    def __len__(self) -> int:
        return len(self._owner)

    def __getitem__(self, index: int) -> tuple[dict, DatasetSpec]:
        start, stop = self._offsets[index], self._offsets[index + 1]
        return json.loads(self._data[start:stop].tobytes()), self.specs[self._owner[index]]


def _read_rows(path: Path) -> Iterator[dict]:
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a list of records")
    for number, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("conversations"), list):
            raise DataError(f"{path}: record {number} has no 'conversations' list")
        images = row.get("image")
        if not (images is None or isinstance(images, str)
                or (isinstance(images, list) and all(isinstance(i, str) for i in images))):
            raise DataError(f"{path}: record {number}: 'image' must be a path or a list of paths")
        yield row


def _image_list(row: dict) -> list[str]:
    images = row.get("image")
    if images is None:
        return []
    if isinstance(images, str):
        return [images]
    if isinstance(images, list) and all(isinstance(i, str) for i in images):
        return images
    raise DataError(f"record {row.get('id')!r}: 'image' must be a path or a list of paths")


@dataclass(frozen=True)
class Exchange:
    question: str
    n_images: int
    answer: str


def conversation(row: dict, where: str) -> tuple[list[Exchange], list[str]]:
    """The record's exchanges with images placed as the paper does, and its image paths."""
    images = _image_list(row)
    turns = [t for t in row["conversations"] if isinstance(t, dict)]
    if turns and turns[0].get("from") != "human":  # as LLaVA does: a conversation starts with the user
        turns = turns[1:]
    if len(turns) < 2 or len(turns) % 2:
        raise DataError(f"{where}: expected alternating human/gpt turns, found {len(turns)} turns")
    exchanges = []
    tags = []
    for i in range(0, len(turns), 2):
        human, gpt = turns[i], turns[i + 1]
        if human.get("from") != "human" or gpt.get("from") != "gpt":
            raise DataError(f"{where}: turn {i} must be from human and turn {i + 1} from gpt")
        question, answer = human.get("value"), gpt.get("value")
        if not isinstance(question, str) or not isinstance(answer, str):
            raise DataError(f"{where}: turn {i} or {i + 1} has no text 'value'")
        if prompt.IMAGE_PLACEHOLDER in answer:
            raise DataError(f"{where}: an answer contains {prompt.IMAGE_PLACEHOLDER}")
        tags.append(question.count(prompt.IMAGE_PLACEHOLDER))
        exchanges.append(Exchange(question.replace(prompt.IMAGE_PLACEHOLDER, "").strip(), 0, answer))
    if sum(tags) == 0:
        tags[0] = len(images)
    elif sum(tags) != len(images):
        raise DataError(f"{where}: {sum(tags)} {prompt.IMAGE_PLACEHOLDER} tags but {len(images)} images")
    return [Exchange(e.question, n, e.answer) for e, n in zip(exchanges, tags, strict=True)], images


@dataclass
class Encoded:
    input_ids: list[int]  # image positions expanded: n_image_tokens x IMAGE_TOKEN_INDEX per image
    labels: list[int]
    n_images: int  # images kept (an image cut by the length limit is dropped whole)


def encode(exchanges: Sequence[Exchange], tokenizer: TextTokenizer, n_image_tokens: int, max_length: int) -> Encoded:
    """Token ids and labels: the prompt parts (user turns, role tags, images) are masked; each answer, the
    space-newline that closes it and the final end-of-text are learned. Prompt text is tokenized in the
    same chunks as at inference (split at the images), answers on their own."""
    ids: list[int] = []
    labels: list[int] = []
    for exchange in exchanges:
        text = prompt.user_turn(exchange.question, exchange.n_images) + prompt.ASSISTANT_TAG
        for number, piece in enumerate(text.split(prompt.IMAGE_PLACEHOLDER)):
            if number:
                ids += [IMAGE_TOKEN_INDEX] * n_image_tokens
                labels += [IGNORE_INDEX] * n_image_tokens
            if piece:
                piece_ids = tokenizer.encode(piece)
                ids += piece_ids
                labels += [IGNORE_INDEX] * len(piece_ids)
        answer = tokenizer.encode(prompt.assistant_turn(exchange.answer)[len(prompt.ASSISTANT_TAG):])
        ids += answer
        labels += answer
    ids.append(tokenizer.eos_id)
    labels.append(tokenizer.eos_id)
    cut = len(ids)
    if cut > max_length:
        cut = max_length
        while cut > 0 and ids[cut] == IMAGE_TOKEN_INDEX and ids[cut - 1] == IMAGE_TOKEN_INDEX:
            cut -= 1  # back to the start of the image the limit falls in
    ids, labels = ids[:cut], labels[:cut]
    return Encoded(ids, labels, ids.count(IMAGE_TOKEN_INDEX) // n_image_tokens)


def load_pixels(path: Path, size: int) -> torch.Tensor:
    """One image exactly as the official code prepares it (padded to square, bicubic, CLIP-normalised)."""
    try:
        with Image.open(path) as image:
            prepared = prepare(image, size)
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the image ({exc})") from None
    return torch.from_numpy(normalise(prepared))


class SupervisedDataset(torch.utils.data.Dataset):
    def __init__(self, store: RecordStore, tokenizer: TextTokenizer, n_image_tokens: int, image_size: int,
                 max_length: int):
        self.store = store
        self.tokenizer = tokenizer
        self.n_image_tokens = n_image_tokens
        self.image_size = image_size
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> dict:
        row, spec = self.store[index]
        where = f"{spec.json}: record {index} (id {row.get('id')!r})"
        exchanges, images = conversation(row, where)
        encoded = encode(exchanges, self.tokenizer, self.n_image_tokens, self.max_length)
        root = Path(spec.images) if spec.images else Path(spec.json).parent
        pixels = [load_pixels(root / p, self.image_size) for p in images[: encoded.n_images]]
        return {
            "input_ids": torch.tensor(encoded.input_ids, dtype=torch.long),
            "labels": torch.tensor(encoded.labels, dtype=torch.long),
            "pixel_values": torch.stack(pixels) if pixels else None,
        }


def collate(samples: Sequence[dict], packing: bool, pad_id: int) -> dict:
    """A micro batch. Packed: one row of concatenated samples whose position ids restart at 0 for each
    sample (attention then stays within each sample). Unpacked: rows padded on the right."""
    lengths = [len(s["input_ids"]) for s in samples]
    pixels = [s["pixel_values"] for s in samples if s["pixel_values"] is not None]
    labels = [s["labels"].clone() for s in samples]
    for row in labels:
        row[0] = IGNORE_INDEX  # never a target; in a packed row it would be predicted from the previous sample
    batch = {
        "pixel_values": torch.cat(pixels) if pixels else None,
        "lengths": lengths,
        "n_images": sum(len(p) for p in pixels),
    }
    if packing:
        batch.update(
            input_ids=torch.cat([s["input_ids"] for s in samples])[None],
            labels=torch.cat(labels)[None],
            position_ids=torch.cat([torch.arange(n) for n in lengths])[None],
            attention_mask=None,
        )
    else:
        width = max(lengths)
        input_ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
        padded_labels = torch.full((len(samples), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(samples), width), dtype=torch.long)
        for row, (sample, label, n) in enumerate(zip(samples, labels, lengths, strict=True)):
            input_ids[row, :n] = sample["input_ids"]
            padded_labels[row, :n] = label
            attention_mask[row, :n] = 1
        batch.update(
            input_ids=input_ids,
            labels=padded_labels,
            position_ids=torch.arange(width).expand(len(samples), width).clone(),
            attention_mask=attention_mask,
        )
    return batch


class StepSampler(torch.utils.data.Sampler):
    """This rank's micro batches (lists of record indices), optimizer step after step, from `start_step`.

    Each epoch is a seeded permutation of all records; step s takes the s-th slice of `global_batch`
    records, of which each rank takes its contiguous share, cut into micro batches. What a step trains
    on depends only on (seed, step), so a resumed run sees exactly the samples the stopped one would have.
    """

    def __init__(self, n_records: int, global_batch: int, micro_batch: int, world_size: int, rank: int,
                 seed: int, total_steps: int, start_step: int = 0):
        if global_batch % (micro_batch * world_size):
            raise ValueError("global batch must be a multiple of micro batch x world size")
        self.steps_per_epoch = n_records // global_batch
        if self.steps_per_epoch == 0:
            raise DataError(f"{n_records} records are fewer than one global batch of {global_batch}")
        self.n_records = n_records
        self.global_batch = global_batch
        self.micro_batch = micro_batch
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.total_steps = total_steps
        self.start_step = start_step
        self._epoch_order: tuple[int, torch.Tensor] | None = None

    def step_indices(self, step: int) -> list[int]:
        """The records of one optimizer step that this rank trains on."""
        epoch, within = divmod(step, self.steps_per_epoch)
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._epoch_order = (epoch, torch.randperm(self.n_records, generator=generator))
        batch = self._epoch_order[1][within * self.global_batch : (within + 1) * self.global_batch]
        share = self.global_batch // self.world_size
        return batch[self.rank * share : (self.rank + 1) * share].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.total_steps):
            indices = self.step_indices(step)
            for start in range(0, len(indices), self.micro_batch):
                yield indices[start : start + self.micro_batch]

    def __len__(self) -> int:
        per_step = self.global_batch // self.world_size // self.micro_batch
        return (self.total_steps - self.start_step) * per_step
