"""A text GGUF + mmproj pair loaded in llama.cpp, driven at the level of tokens, image chunks and
KV-cache positions.

The caller owns the position counter (`n_past`), so a conversation keeps its KV cache across turns,
an image is encoded once, and a regenerate or an edit rolls the cache back with `truncate` instead of
starting over. Everything here can abort the process on bad input: run it in a process that may die
(see the engine's worker), after `gguf_check` has validated the files.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import mtmd_cpp

from .hardware import physical_cores
from .repacked_weights import loading_with

MEDIA_MARKER = mtmd_cpp.mtmd_default_marker().decode()


@dataclass
class EncodedImage:
    """An image run through the vision tower once: its mtmd chunk and its embeddings, reusable at any position."""

    chunk: object  # mtmd_input_chunk_p (owned copy)
    embeddings: np.ndarray  # (n_tokens, n_embd) float32
    n_pos: int  # positions it advances the conversation by (M-RoPE: one side of its grid, fewer than its cells)

    @property
    def n_tokens(self) -> int:
        """KV cells it occupies: one per embedding."""
        return int(self.embeddings.shape[0])


class NativeModel:
    def __init__(
        self,
        text_path: str,
        mmproj_path: str | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        n_gpu_layers: int = 0,
        kv_f32: bool = False,
        logits_all: bool = False,
        verbose: bool = False,
        repacked_weights: str | Path | None = None,
    ):
        """repacked_weights: the file where the text model's weights, repacked for this CPU, are kept between loads
        (repacked_weights.py); None repacks them at every load."""
        threads = n_threads or physical_cores()
        started = time.perf_counter()
        extra = {"type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32} if kv_f32 else {}
        with loading_with(repacked_weights) as outcome:
            self.llm = llama_cpp.Llama(
                model_path=str(text_path), n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch, n_threads=threads,
                n_threads_batch=threads, n_gpu_layers=n_gpu_layers, logits_all=logits_all, verbose=verbose, **extra,
            )
        self.repacked_weights = outcome.get("repacked_weights")  # "mapped", "written", "not kept" or None
        self.n_ctx = self.llm.n_ctx()
        self.n_batch = n_batch
        self.n_vocab = self.llm.n_vocab()
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.is_bpe = llama_cpp.llama_vocab_type(self._vocab) == llama_cpp.LLAMA_VOCAB_TYPE_BPE
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.load_timings = {"text_s": time.perf_counter() - started}  # where a load's time goes
        self.mtmd = None
        if mmproj_path is not None:
            if problem := patched_build_problem():
                self.close()
                raise RuntimeError(problem)
            params = mtmd_cpp.mtmd_context_params_default()
            params.use_gpu = n_gpu_layers != 0
            params.print_timings = verbose
            params.n_threads = threads
            started = time.perf_counter()
            self.mtmd = mtmd_cpp.mtmd_init_from_file(str(mmproj_path).encode(), self.llm.model, params)
            if not self.mtmd:
                raise RuntimeError(f"llama.cpp could not load the vision projector {mmproj_path}")
            self.load_timings["vision_s"] = time.perf_counter() - started

    # --- text ----------------------------------------------------------------------------------
    def tokenize(self, text: str, special: bool = True) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def detokenize(self, tokens: list[int]) -> bytes:
        return self.llm.detokenize(tokens)

    @property
    def chat_template(self) -> str | None:
        """The chat template stored in the text GGUF (tokenizer.chat_template), if any."""
        return self.llm.metadata.get("tokenizer.chat_template")

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def decode_tokens(self, tokens: list[int], n_past: int, all_logits: bool = False) -> int:
        """Evaluate tokens at positions n_past.. and return the new n_past; logits of the last token
        (or of every token with all_logits) are then available."""
        if n_past + len(tokens) > self.n_ctx:
            raise ContextFullError(n_past + len(tokens), self.n_ctx)
        batch = self._batch
        for start in range(0, len(tokens), self.n_batch):
            part = tokens[start:start + self.n_batch]
            batch.n_tokens = len(part)
            for i, token in enumerate(part):
                batch.token[i] = token
                batch.pos[i] = n_past + start + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = all_logits or (start + i == len(tokens) - 1)
            code = llama_cpp.llama_decode(self.llm.ctx, batch)
            if code != 0:
                raise RuntimeError(f"llama_decode failed with code {code}")
        return n_past + len(tokens)

    def decode_perf(self) -> tuple[float, int]:
        """llama.cpp's own count of single-token decodes since the context was made: (milliseconds, count),
        the compute alone (no sampling, no Python), comparable with any other llama.cpp context's."""
        perf = llama_cpp.llama_perf_context(self.llm.ctx)
        return perf.t_eval_ms, perf.n_eval

    def logits(self, index: int = -1) -> np.ndarray:
        """Logits of the index-th output of the last decode (-1: the last one), copied."""
        ptr = llama_cpp.llama_get_logits_ith(self.llm.ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def truncate(self, n_past: int) -> None:
        """Forget every KV entry at position >= n_past (roll the conversation back)."""
        memory = llama_cpp.llama_get_memory(self.llm.ctx)
        llama_cpp.llama_memory_seq_rm(memory, 0, n_past, -1)

    # --- saved states --------------------------------------------------------------------------
    def sequence_state(self) -> bytearray:
        """The KV cells of the conversation (sequence 0), as llama.cpp serialises them."""
        size = llama_cpp.llama_state_seq_get_size(self.llm.ctx, 0)
        data = bytearray(size)
        buffer = (ctypes.c_uint8 * size).from_buffer(data)
        written = llama_cpp.llama_state_seq_get_data(self.llm.ctx, buffer, size, 0)
        del buffer  # releases the export of `data`
        if written != size:
            raise RuntimeError(f"llama.cpp wrote {written} of {size} bytes of the sequence state")
        return data

    def restore_sequence_state(self, data: bytearray) -> bool:
        """Replace the conversation's KV cells with a saved state; False (and an empty conversation) when llama.cpp
        refuses it (another model's, another build's, or a damaged state)."""
        self.truncate(0)
        buffer = (ctypes.c_uint8 * len(data)).from_buffer(data)
        try:
            read = llama_cpp.llama_state_seq_set_data(self.llm.ctx, buffer, len(data), 0)
        finally:
            del buffer
        if read == 0:
            self.truncate(0)
            return False
        return True

    # --- images --------------------------------------------------------------------------------
    def encode_image(self, image_bytes: bytes) -> EncodedImage:
        """Run the vision tower on an encoded image (PNG/JPEG bytes, already prepared to the model's size)."""
        if self.mtmd is None:
            raise RuntimeError("no vision projector is loaded")
        buffer = (ctypes.c_uint8 * len(image_bytes)).from_buffer_copy(image_bytes)
        bitmap = mtmd_cpp.mtmd_helper_bitmap_init_from_buf(self.mtmd, buffer, len(image_bytes), False)
        if not bitmap:
            raise ValueError("llama.cpp could not decode the image (PNG, JPEG or BMP expected)")
        chunks = mtmd_cpp.mtmd_input_chunks_init()
        try:
            text = mtmd_cpp.mtmd_input_text()
            marker = MEDIA_MARKER.encode()
            text.text, text.text_len, text.add_special, text.parse_special = marker, len(marker), False, True
            bitmaps = (mtmd_cpp.mtmd_bitmap_p_ctypes * 1)(bitmap)
            if mtmd_cpp.mtmd_tokenize(self.mtmd, chunks, ctypes.byref(text), bitmaps, 1) != 0:
                raise RuntimeError("mtmd could not prepare the image")
            image_chunk = None
            for i in range(mtmd_cpp.mtmd_input_chunks_size(chunks)):
                chunk = mtmd_cpp.mtmd_input_chunks_get(chunks, i)
                if mtmd_cpp.mtmd_input_chunk_get_type(chunk) == mtmd_cpp.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                    image_chunk = chunk
            if image_chunk is None:
                raise RuntimeError("mtmd produced no image chunk")
            if mtmd_cpp.mtmd_encode_chunk(self.mtmd, image_chunk) != 0:
                raise RuntimeError("the vision encoder failed")
            n_tokens = mtmd_cpp.mtmd_input_chunk_get_n_tokens(image_chunk)
            n_embd = llama_cpp.llama_model_n_embd(self.llm.model)
            out = mtmd_cpp.mtmd_get_output_embd(self.mtmd)
            embeddings = np.ctypeslib.as_array(out, shape=(n_tokens * n_embd,)).reshape(n_tokens, n_embd).copy()
            owned = mtmd_cpp.mtmd_input_chunk_copy(image_chunk)
            return EncodedImage(owned, embeddings, mtmd_cpp.mtmd_input_chunk_get_n_pos(image_chunk))
        finally:
            mtmd_cpp.mtmd_input_chunks_free(chunks)
            mtmd_cpp.mtmd_bitmap_free(bitmap)

    def decode_image(self, image: EncodedImage, n_past: int) -> int:
        """Put an encoded image's embeddings into the KV cache at n_past, without re-encoding it."""
        if n_past + image.n_pos > self.n_ctx:
            raise ContextFullError(n_past + image.n_pos, self.n_ctx)
        embd = np.ascontiguousarray(image.embeddings, dtype=np.float32)
        new_n_past = llama_cpp.llama_pos(0)
        code = mtmd_cpp.mtmd_helper_decode_image_chunk(
            self.mtmd, self.llm.ctx, image.chunk, embd.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            llama_cpp.llama_pos(n_past), llama_cpp.llama_seq_id(0), self.n_batch, ctypes.byref(new_n_past),
            mtmd_cpp.mtmd_helper_post_decode_callback(), None,  # no callback
        )
        if code != 0:
            raise RuntimeError(f"decoding the image embeddings failed with code {code}")
        return new_n_past.value

    def free_image(self, image: EncodedImage) -> None:
        if image.chunk:
            mtmd_cpp.mtmd_input_chunk_free(image.chunk)
            image.chunk = None

    def close(self) -> None:
        if self.mtmd:
            mtmd_cpp.mtmd_free(self.mtmd)
            self.mtmd = None
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        self.llm.close()


class ContextFullError(RuntimeError):
    def __init__(self, needed: int, n_ctx: int):
        super().__init__(f"the conversation needs {needed} tokens but the context holds {n_ctx}")
        self.needed, self.n_ctx = needed, n_ctx


def quiet_native_logs() -> None:
    """Silence llama.cpp's and mtmd's own logging (they write to stderr otherwise)."""
    llama_cpp.llama_log_set(_SILENT_LOG, ctypes.c_void_p())
    mtmd_cpp.mtmd_log_set(_SILENT_LOG, ctypes.c_void_p())
    mtmd_cpp.mtmd_helper_log_set(_SILENT_LOG, ctypes.c_void_p())


@llama_cpp.llama_log_callback
def _SILENT_LOG(level, text, user_data):  # noqa: N802 (a C callback kept alive at module level)
    pass


PATCHED_BUILD_LABEL = "+huatuo"


def patched_build_problem() -> str | None:
    """None when the installed llama-cpp-python is our patched build; otherwise why images will be wrong."""
    if PATCHED_BUILD_LABEL in llama_cpp.__version__:
        return None
    return (
        f"llama-cpp-python {llama_cpp.__version__} is not the patched build: its LLaVA image encoder puts the "
        f"class token in the wrong place and image answers will be wrong. Install it with `make llama-cpp` "
        f"(native/llama-cpp/build-wheel.sh)."
    )
