"""The HuatuoGPT-Vision model for training: language model + frozen CLIP tower + mlp2x_gelu projector.

Module names are the canonical tensor names of `conversion.checkpoint` (``text.*``, ``vision.*``,
``projector.*``), so checkpoints, weight sources and the export share one naming.

Image features are as the paper has them: CLIP's hidden state of layer -2 (no post-layernorm), CLS dropped,
through Linear -> GELU (exact erf) -> Linear, spliced in where the prompt has an image.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from conversion.checkpoint import TEXT_FAMILIES, Checkpoint
from conversion.shapes import NAMED_SHAPES

from . import weights as weight_sources
from .config import ModelSection

IGNORE_INDEX = -100  # labels that take no part in the loss
IMAGE_TOKEN_INDEX = -200  # input id of every position an image feature goes to (never a real token)
LOSS_CHUNK_TOKENS = 2048  # logits are formed this many positions at a time (bounds the vocabulary-wide memory)

@dataclass
class ModelSpec:
    """Everything needed to build the model and, later, to export it."""

    family: str  # qwen2 | llama
    text_config: object  # transformers Qwen2Config / LlamaConfig
    vision_config: object  # transformers CLIPVisionConfig
    select_layer: int
    tokenizer_dir: Path | None  # where the tokenizer files are (None for random-weight models)
    vit_dir: Path | None  # a folder with CLIP's config.json / preprocessor_config.json to carry into exports
    weights: weight_sources.WeightSource | None  # None: random weights (benchmarks)

    @property
    def n_image_tokens(self) -> int:
        v = self.vision_config
        return (v.image_size // v.patch_size) ** 2

    @property
    def image_size(self) -> int:
        return self.vision_config.image_size


def resolve_spec(section: ModelSection) -> ModelSpec:
    if section.init_checkpoint:
        return _spec_from_checkpoint(Path(section.init_checkpoint), section)
    if section.base_llm and section.vision_tower:
        return _spec_from_parts(section)
    if section.shapes:
        return spec_from_shapes(section.shapes, section.attn_implementation)
    raise ValueError("the model section names no weights")


def spec_from_shapes(name: str, attn_implementation: str = "sdpa") -> ModelSpec:
    if name not in NAMED_SHAPES:
        raise ValueError(f"unknown model shapes {name!r} (known: {', '.join(NAMED_SHAPES)})")
    family, s = NAMED_SHAPES[name]
    text = make_text_config(
        family, hidden_size=s.hidden_size, intermediate_size=s.ffn_size, num_hidden_layers=s.n_layers,
        num_attention_heads=s.n_heads, num_key_value_heads=s.n_kv_heads, vocab_size=s.vocab_size,
        rms_norm_eps=1e-6, rope_theta=1e6 if family == "qwen2" else 5e6, tie_word_embeddings=False,
        bos_token_id=None, eos_token_id=s.vocab_size - 1,
    )
    vision = make_vision_config(s.vision_hidden, s.vision_ffn, s.vision_layers, s.vision_heads, s.image_size,
                                s.patch_size, 1e-5)
    _set_attention(text, vision, attn_implementation)
    return ModelSpec(family, text, vision, -2, None, None, None)


def make_text_config(family: str, **fields):
    from transformers import LlamaConfig, Qwen2Config

    fields.setdefault("max_position_embeddings", 32768 if family == "qwen2" else 4096)
    if family == "qwen2":
        return Qwen2Config(hidden_act="silu", use_sliding_window=False, **fields)
    return LlamaConfig(hidden_act="silu", attention_bias=False, **fields)


def make_vision_config(hidden, ffn, layers, heads, image_size, patch_size, eps):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers, num_attention_heads=heads,
        image_size=image_size, patch_size=patch_size, layer_norm_eps=eps, hidden_act="quick_gelu",
        projection_dim=768,
    )


def _set_attention(text, vision, attn_implementation: str) -> None:
    text._attn_implementation = attn_implementation
    # CLIP runs on whole images without padding; flash/flex add nothing there.
    vision._attn_implementation = "sdpa" if attn_implementation in ("flash_attention_2", "flex_attention") else (
        attn_implementation)


def _spec_from_checkpoint(path: Path, section: ModelSection) -> ModelSpec:
    ckpt = Checkpoint(path)
    t, v = ckpt.text, ckpt.vision
    raw = ckpt.config.get("text_config", ckpt.config) if ckpt.layout == "hf" else ckpt.config
    eos = raw.get("eos_token_id")
    text = make_text_config(
        t.family, hidden_size=t.hidden_size, intermediate_size=t.ffn_size, num_hidden_layers=t.n_layers,
        num_attention_heads=t.n_heads, num_key_value_heads=t.n_kv_heads, vocab_size=t.vocab_size,
        rms_norm_eps=t.rms_norm_eps, rope_theta=t.rope_theta, tie_word_embeddings=t.tie_embeddings,
        bos_token_id=raw.get("bos_token_id"), eos_token_id=eos[0] if isinstance(eos, list) else eos,
        max_position_embeddings=raw.get("max_position_embeddings") or max(4096, t.context_length),
    )
    vision = make_vision_config(v.hidden_size, v.ffn_size, v.n_layers, v.n_heads, v.image_size, v.patch_size,
                                v.layer_norm_eps)
    _set_attention(text, vision, section.attn_implementation)
    tower = ckpt.config.get("mm_vision_tower") or ""
    vit_dir = path / tower if ckpt.layout == "original" and tower.startswith(".") and (path / tower).is_dir() else None
    return ModelSpec(t.family, text, vision, v.n_layers_used - v.n_layers - 1, path, vit_dir,
                     weight_sources.from_checkpoint(ckpt))


def _spec_from_parts(section: ModelSection) -> ModelSpec:
    from transformers import AutoConfig, CLIPVisionConfig

    base, tower = Path(section.base_llm), Path(section.vision_tower)
    for folder in (base, tower):
        if not (folder / "config.json").is_file():
            raise weight_sources.WeightError(f"{folder}: no config.json, so this is not a model folder")
    text = AutoConfig.from_pretrained(base)
    family = TEXT_FAMILIES.get(text.model_type)
    if family is None:
        raise weight_sources.WeightError(
            f"{base}: language model type {text.model_type!r} is not supported (Qwen2 or Llama-family such as Yi)"
        )
    vision = CLIPVisionConfig.from_pretrained(tower)
    _set_attention(text, vision, section.attn_implementation)
    projector = Path(section.projector) if section.projector else None
    return ModelSpec(family, text, vision, section.vision_select_layer, base, tower,
                     weight_sources.from_parts(base, tower, projector))


def _causal_lm_class(family: str):
    import transformers

    return transformers.Qwen2ForCausalLM if family == "qwen2" else transformers.LlamaForCausalLM


class VisionTower(nn.Module):
    """CLIP's vision transformer with the canonical names (``embeddings``, ``pre_layrnorm``, ``encoder``,
    ``post_layernorm``), run only up to the selected layer: the layers after it, and the post-layernorm,
    are kept for the checkpoint but never computed."""

    def __init__(self, config, select_layer: int):
        super().__init__()
        from transformers import CLIPVisionModel

        clip = CLIPVisionModel(config)
        inner = getattr(clip, "vision_model", clip)  # transformers 4 nests the modules one level deeper
        self.config = config
        self.embeddings = inner.embeddings
        self.pre_layrnorm = inner.pre_layrnorm
        self.encoder = inner.encoder
        self.post_layernorm = inner.post_layernorm
        n_layers = len(self.encoder.layers)
        self.n_used = n_layers + 1 + select_layer if select_layer < 0 else select_layer
        if not 0 < self.n_used <= n_layers:
            raise ValueError(f"vision feature layer {select_layer} is out of range for {n_layers} layers")
        layer_forward = inspect.signature(type(self.encoder.layers[0]).forward).parameters
        self._masks = (None, None) if "causal_attention_mask" in layer_forward else (None,)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Patch features of the selected layer, CLS dropped: (n_images, n_patches, width)."""
        hidden = self.pre_layrnorm(self.embeddings(pixel_values))
        for layer in self.encoder.layers[: self.n_used]:
            out = layer(hidden, *self._masks)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden[:, 1:]


class LlavaForTraining(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.text = _causal_lm_class(spec.family)(spec.text_config)
        self.vision = VisionTower(spec.vision_config, spec.select_layer)
        width = spec.text_config.hidden_size
        self.projector = nn.Sequential(
            nn.Linear(spec.vision_config.hidden_size, width), nn.GELU(), nn.Linear(width, width)
        )
        self.image_size = spec.image_size

    def train(self, mode: bool = True) -> LlavaForTraining:
        super().train(mode)
        self.vision.eval()  # frozen: always in inference behaviour
        return self

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each decoder layer in backward instead of keeping its activations."""
        kwargs = {"use_reentrant": False}
        if hasattr(self.text, "activation_checkpointing_enable"):  # transformers >= 5
            self.text.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            self.text.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(n_images, n_patches, text width): projected layer -2 patch features."""
        with torch.no_grad():  # the tower is frozen
            patches = self.vision(pixel_values)
        return self.projector(patches)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed cross-entropy over the label tokens, and their count (float32 scalars)."""
        image_positions = input_ids == IMAGE_TOKEN_INDEX
        embeds = self.text.get_input_embeddings()(input_ids.clamp(min=0))
        # Every rank runs the tower and projector on every micro batch (a blank image when the batch has
        # none), so sharded parameters are gathered and gradients reduced in step on all ranks.
        dummy = pixel_values is None
        if dummy:
            pixel_values = embeds.new_zeros((1, 3, self.image_size, self.image_size), dtype=torch.float32)
        features = self.image_features(pixel_values)
        if dummy:
            embeds = embeds + features.sum() * 0
        else:
            features = features.reshape(-1, features.shape[-1]).to(embeds.dtype)
            n_slots = int(image_positions.sum())
            if n_slots != features.shape[0]:
                raise ValueError(f"{n_slots} image positions in the batch but {features.shape[0]} image features")
            embeds = embeds.masked_scatter(image_positions.unsqueeze(-1), features)
        hidden = self.text.model(
            inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        return self._loss(hidden, labels)

    def _loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        targets = labels[:, 1:]
        selected = targets != IGNORE_INDEX
        states = hidden[:, :-1][selected]
        targets = targets[selected]
        weight = self.text.get_output_embeddings().weight
        if targets.numel() == 0:  # keep the output layer in the graph, contributing nothing
            zero = _token_loss_sum(hidden[:, :1].reshape(-1, hidden.shape[-1]), weight,
                                   torch.zeros(hidden.shape[0], dtype=torch.long, device=hidden.device))
            return zero * 0, zero.new_zeros(())
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, targets.numel(), LOSS_CHUNK_TOKENS):
            stop = start + LOSS_CHUNK_TOKENS
            # Recomputed in backward: the vocabulary-wide logits of a chunk never outlive it.
            total = total + checkpoint(_token_loss_sum, states[start:stop], weight, targets[start:stop],
                                       use_reentrant=False, preserve_rng_state=False)
        return total, torch.tensor(float(targets.numel()), device=hidden.device)


def _token_loss_sum(states: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = F.linear(states, weight).float()
    return F.cross_entropy(logits, targets, reduction="sum")


# --- construction without memory, then loading shard by shard ---------------------------------
@contextlib.contextmanager
def parameters_on_meta():
    """Parameters are created on the meta device (no memory); buffers are created as usual, because
    rotary frequencies and position ids are computed in constructors and are in no checkpoint."""
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None and param.device.type != "meta":
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def build_on_meta(spec: ModelSpec, trainable: tuple[str, ...], frozen_dtype: torch.dtype) -> LlavaForTraining:
    """The model with parameters on the meta device, trainable parts marked, frozen parts in `frozen_dtype`."""
    with parameters_on_meta():
        model = LlavaForTraining(spec)
    parts = {"projector": model.projector, "llm": model.text, "vision": model.vision}
    for part, module in parts.items():
        module.requires_grad_(part in trainable)
        if part not in trainable:  # frozen weights need no float32 master copy
            for param in module.parameters():
                param.data = param.data.to(frozen_dtype)
    return model


def materialize(model: nn.Module, device: torch.device, spec: ModelSpec, seed: int, fill: bool = True,
                offload: bool = False) -> None:
    """Allocate the (sharded) parameters on `device` (on the CPU when FSDP offloads them) and, with `fill`,
    fill them: from the weight source, a new projector where the source has none (LLaVA's default init,
    seeded: the same on every rank), random weights for shape-only (benchmark) specs. Without `fill` they
    are left for a checkpoint to load. Buffers (computed at construction) keep their values, on `device`."""
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    model.to_empty(device=torch.device("cpu") if offload else device)
    for name, value in buffers.items():
        owner, _, attribute = name.rpartition(".")
        model.get_submodule(owner)._buffers[attribute] = value.to(device)
    if not fill:
        return
    with torch.no_grad():
        projector = _new_projector(spec, seed)
        for key, param in model.named_parameters():  # parameter names are the canonical tensor names
            local = param.to_local() if hasattr(param, "to_local") else param
            start, stop = _local_rows(param, local)
            if spec.weights is not None and key in spec.weights:
                if tuple(spec.weights.shape(key)) != tuple(param.shape):
                    raise weight_sources.WeightError(
                        f"{spec.weights.origin(key)}: shape {tuple(spec.weights.shape(key))} does not fit the "
                        f"model's {key} {tuple(param.shape)}"
                    )
                block = spec.weights.read(key, start, stop) if param.dim() else spec.weights.read(key)
            elif key in projector:
                block = projector[key] if start is None else projector[key][start:stop]
            elif spec.weights is None:
                _random_init(key, local)
                continue
            else:
                raise weight_sources.WeightError(f"the starting weights have no tensor {key}")
            local.copy_(block.reshape(local.shape).to(local.dtype))


def _local_rows(param, local: torch.Tensor) -> tuple[int | None, int | None]:
    """Row range of this rank's shard: FSDP2 shards dim 0 the way torch.chunk does."""
    if not hasattr(param, "device_mesh") or param.dim() == 0:
        return None, None
    mesh = param.device_mesh
    rows = param.shape[0]
    chunk = math.ceil(rows / mesh.size())
    start = min(mesh.get_coordinate()[0] * chunk, rows)
    stop = min(start + chunk, rows)
    if stop - start != local.shape[0]:
        raise RuntimeError(f"unexpected shard layout: rows {start}:{stop} but local shape {tuple(local.shape)}")
    return start, stop


def _new_projector(spec: ModelSpec, seed: int) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        width = spec.text_config.hidden_size
        projector = nn.Sequential(nn.Linear(spec.vision_config.hidden_size, width), nn.GELU(),
                                  nn.Linear(width, width))
    return {"projector." + name: tensor for name, tensor in projector.state_dict().items()}


def _random_init(key: str, local: torch.Tensor) -> None:
    """Benchmark weights, made where they live: norms at one, other vectors at zero, matrices N(0, 0.02)."""
    if local.dim() >= 2:
        local.normal_(0.0, 0.02)
    elif key.endswith("weight") and ("norm" in key or "layrnorm" in key):
        local.fill_(1.0)
    else:
        local.zero_()


def save_spec(spec: ModelSpec, folder: Path) -> None:
    """What the export needs to rebuild configs: the text and vision configs and the family."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps({
        "family": spec.family,
        "select_layer": spec.select_layer,
        "text_config": spec.text_config.to_dict(),
        "vision_config": spec.vision_config.to_dict(),
    }, indent=2, default=str))
