"""Mixed precision and compilation switches shared by training and prediction.

``train.amp`` / ``eval.amp``: ``none`` (float32, the default and the exact reference), ``bf16`` or
``fp16`` autocast on the run's device (CPU autocast works too; bf16 is fast on CPUs with
AVX512-BF16/AMX).  fp16 training needs loss scaling (:func:`grad_scaler`); bf16 has float32's
range and does not.  The model keeps float32 where half precision loses what matters -- the
deformable-attention locations, softmax weights and sampling, the class/box heads, the dynamic
mask head, the matcher -- see :func:`seqformer.models.layers.full_precision`; the trainer computes
the losses outside autocast.

``train.compile`` / ``eval.compile``: :func:`compile_model` compiles the transformer layers and
the mask FPN in place with ``torch.compile`` (state-dict names unchanged, so checkpoints load and
save as before).  The first call of each new input shape pays the compilation (tens of seconds
on a CPU); docs/benchmarks.md has the measured cost and gain.
"""
from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn

from seqformer.errors import SeqFormerError

log = logging.getLogger("seqformer.precision")

AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class PrecisionError(SeqFormerError, ValueError):
    pass


def amp_dtype(mode: str, option: str = "amp") -> torch.dtype | None:
    """The autocast dtype of an ``amp`` option value (None = float32)."""
    if mode not in AMP_DTYPES:
        raise PrecisionError(f"{option} must be one of {', '.join(AMP_DTYPES)}, got {mode!r}")
    return AMP_DTYPES[mode]


def autocast(mode: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """Autocast context for ``mode`` on ``device``; a no-op context for ``none``."""
    dtype = amp_dtype(mode)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def grad_scaler(mode: str, device: torch.device | str, init_scale: float = 2.0**16) -> torch.amp.GradScaler:
    """Loss scaling for fp16 training (a disabled scaler, i.e. pass-through, otherwise)."""
    return torch.amp.GradScaler(torch.device(device).type, init_scale=init_scale,
                                enabled=amp_dtype(mode) is torch.float16)


def prepare_model(model: nn.Module, amp: str = "none", compile: bool = False) -> nn.Module:
    """Ready ``model`` (already on its device) for ``amp`` / ``compile``; a no-op for the defaults.

    Under autocast the convolution weights move to channels-last, the layout oneDNN's bfloat16
    (AMX) and cuDNN's tensor-core kernels want: 7x faster than fp32 per 3x3 convolution on this
    project's CPU, against 2x for bfloat16 in the default layout.  Parameter values and names do
    not change.
    """
    if amp_dtype(amp) is not None:
        model.to(memory_format=torch.channels_last)
    return compile_model(model, compile)


def compile_model(model: nn.Module, enabled: bool = True, **options) -> nn.Module:
    """Compile the encoder/decoder layers and the mask FPN of a SeqFormer-family model in place.

    Per-layer compilation (rather than the whole model) keeps graph breaks at the deformable
    attention's data-dependent level sizes out of the compiled regions' hot loops, and leaves the
    matcher (scipy) and the per-query mask loops eager.  Returns ``model``.
    """
    if not enabled:
        return model
    detr = getattr(model, "detr", model)
    targets: list[nn.Module] = []
    transformer = getattr(detr, "transformer", None)
    if transformer is not None:
        targets += list(transformer.encoder.layers) + list(transformer.decoder.layers)
    if getattr(model, "mask_head", None) is not None:
        targets.append(model.mask_head)
    if not targets:
        raise PrecisionError(f"compile: {type(model).__name__} has no transformer to compile")
    for module in targets:
        module.compile(**options)
    log.info("compiled %d modules (first call per input shape compiles)", len(targets))
    return model
