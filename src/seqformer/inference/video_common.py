"""What ``seqformer infer vis`` and ``infer ava`` share: the command-line options, the output folder
check, loading the inputs, config and model, atomic small-file writes, progress bars and the model context
(device, AMP)."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from seqformer.config import Config, load_config
from seqformer.data.video_input import InputVideoError, VideoInput, expand_inputs, open_input
from seqformer.engine import precision
from seqformer.engine.threads import threads_help
from seqformer.utils.render import atomic_output


def add_video_arguments(parser: argparse.ArgumentParser, config_help: str) -> None:
    parser.add_argument("--config", required=True, help=config_help)
    parser.add_argument("--weights", required=True, help="released or trained checkpoint (.pth)")
    parser.add_argument("--input", required=True, nargs="+", metavar="IN",
                        help="video file(s) of any container/codec PyAV opens, frame folder(s), globs "
                             "('clips/*.mp4') or @list.txt (one path per line)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--fps", type=float, default=None,
                        help="resample to this rate (default: the video's; 30 for a frame folder)")
    parser.add_argument("--short-side", type=int, default=None, help="network input short side (default: config's)")
    parser.add_argument("--max-side", type=int, default=None, help="cap on the network input long side")
    parser.add_argument("--start", type=float, default=0.0, help="first second to process")
    parser.add_argument("--end", type=float, default=None, help="second to stop at (default: the end)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--threads", type=int, default=None, help=threads_help())
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default=None,
                        help="autocast dtype (default: the config's eval.amp, float32 unless set); bf16 also runs on "
                             "CPUs with bfloat16 support")
    parser.add_argument("--score-threshold", type=float, default=0.3, help="draw predictions scoring at least this")
    parser.add_argument("--no-render", action="store_true", help="write results only, no video or picture")
    parser.add_argument("--render-max-side", type=int, default=None,
                        help="rendered video long side at most (default: the input's resolution)")
    parser.add_argument("--render-upscale", type=float, default=1.0,
                        help="scale the rendered video by this factor (e.g. 4 for tiny inputs; labels stay legible)")
    parser.add_argument("--on-decode-error", choices=["skip", "stop"], default="skip",
                        help="a frame that fails to decode: skip it and count, or stop with its number")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (line-oriented output for logs)")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")


def prepare_out_dir(path: str | Path) -> Path:
    """Create ``path`` and check it is writable now, before any minutes of inference."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputVideoError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write_test_{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputVideoError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    return out


def open_inputs(args: argparse.Namespace) -> tuple[list[VideoInput], Path]:
    """The ``--input`` videos and the ``--out`` folder, checked first: they fail in seconds, not after a
    model has loaded."""
    inputs = [open_input(p, args.fps, args.start, args.end, args.on_decode_error) for p in expand_inputs(args.input)]
    return inputs, prepare_out_dir(args.out)


def load_video_config(args: argparse.Namespace) -> Config:
    """``--config`` with the command line's overrides; ``--amp`` sets ``eval.amp`` (as ``predict`` reads it)."""
    return load_config(args.config, [*args.overrides, *([f"eval.amp={args.amp}"] if args.amp else [])])


def load_inference_model(args: argparse.Namespace, cfg: Config, task_name: str) -> tuple[torch.device, torch.nn.Module]:
    """The task's model with ``--weights`` on ``--device`` (threads and device printed), ready for ``eval.amp``."""
    from seqformer.engine.distributed import resolve_device
    from seqformer.engine.task import get_task
    from seqformer.engine.threads import describe, set_num_threads
    from seqformer.weight_files import load_model_weights

    device = resolve_device(args.device)
    print(describe(device, set_num_threads(args.threads)))
    model = get_task(task_name).build_model(cfg)
    load_model_weights(model, args.weights)
    precision.prepare_model(model.to(device).eval(), cfg.eval.amp)
    return device, model


def save_figure(fig, path: Path) -> None:
    """Write a matplotlib figure atomically (an interrupted run leaves no half-written picture) and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def write_json(path: Path, data) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data))


def frame_progress(frames: Iterable, video: VideoInput, desc: str, enabled: bool) -> Iterator:
    """tqdm over a timeline: frames/s and ETA from the header's frame count."""
    yield from tqdm(frames, total=video.estimated_frames, desc=desc, unit="frame", disable=not enabled,
                    dynamic_ncols=True, file=sys.stderr)


def report_reading(video: VideoInput, length: int) -> list[str]:
    """Warnings about how the input was read (skips, resampling, alpha); raises on an empty timeline."""
    if length == 0:
        raise InputVideoError(f"{video.path}: no frame in the selected time "
                              f"({video.start:g}s to {'the end' if video.end is None else f'{video.end:g}s'})")
    notes = video.counts.warnings(video.fps)
    if video.variable_rate:
        notes.insert(0, f"variable frame rate: read at a constant {video.fps:g} fps")
    for note in notes:
        print(f"warning: {video.path}: {note}", file=sys.stderr)
    return notes


@contextlib.contextmanager
def inference_mode(device: torch.device, amp: str = "none") -> Iterator[None]:
    """No gradients, and autocast to ``amp`` (``eval.amp``: none | bf16 | fp16) as ``predict`` does."""
    with torch.no_grad(), precision.autocast(amp, device):
        yield
