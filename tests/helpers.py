"""Small helpers shared by test modules."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from seqformer.engine.task import get_task


def build_model_for(cfg):
    """The task's model for ``cfg`` (the task adapter is the one place that picks it)."""
    return get_task(cfg.model.task).build_model(cfg)


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10, codec: str = "libx264", pix_fmt: str = "yuv420p",
                times: list[float] | None = None, rotation: int = 0, options: dict | None = None) -> Path:
    """Encode RGB frames; ``times`` (seconds) gives a variable frame rate."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if times is not None:
                vf.pts, vf.time_base = round(times[i] * 1000), Fraction(1, 1000)
            container.mux(stream.encode(vf))
        container.mux(stream.encode())
    return path
