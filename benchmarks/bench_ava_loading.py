"""AVA training-clip loading throughput (32 frames, stride 2, ~256 short side) from JPEG frames.

Writes an AVA-layout frame folder (30 fps from second 900, textured frames so JPEGs have a realistic
size) at two storage resolutions, then times a DataLoader with ``--workers`` processes over:

- ``AVADataset`` train split (short side 256-320 jitter, 256 crop, flip, colour jitter),
- ``AVADataset`` val split (short side 256, no crop),
- a fork-style baseline: per-frame PIL decode + ``Image.resize`` + per-frame tensor conversion.

Prints clips/s and the ratio to the baseline measured in the same run, plus the in-process CPU
time per clip (``__getitem__`` + collate share), which does not depend on how loaded the machine is:
``workers * 1000 / cpu_ms`` is the rate the same number of idle cores would sustain.

``AVADataset`` hands out uint8 pixels and a per-clip colour map; the colour jitter + normalisation
runs on the training device (``ClipBatch.normalized``).  Its cost is printed separately, on this
CPU with one thread and, where available, on CUDA (the fork-style baseline's float conversion is
inside its loading rate).

    .venv/bin/python benchmarks/bench_ava_loading.py --workers 2 --clips 96
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, RandomSampler

from seqformer.data.ava_dataset import AVADataset, clip_frame_indices
from seqformer.data.ava_synth import write_gt_csv, write_labelmap_pbtxt
from seqformer.data.collate import collate_ava
from seqformer.utils.colour import IMAGENET_MEAN, IMAGENET_STD

SECONDS = (902, 912)  # keyframes; frames cover 900 .. 914 s


def write_frames(root: Path, video_id: str, hw: tuple[int, int], n: int, rng: np.random.Generator) -> None:
    (root / video_id).mkdir(parents=True)
    base = np.asarray(Image.fromarray(rng.integers(0, 255, (hw[0] // 8, hw[1] // 8, 3), dtype=np.uint8))
                      .resize((hw[1], hw[0]), Image.BICUBIC), dtype=np.int16)
    for i in range(n):
        shifted = np.roll(base, i, axis=1) + rng.normal(0, 6, base.shape)
        Image.fromarray(shifted.clip(0, 255).astype(np.uint8)).save(
            root / video_id / f"{video_id}_{i + 1:06d}.jpg", quality=90)


def make_dataset(root: Path, hw: tuple[int, int], videos: int) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    frames = root / f"frames_{hw[0]}x{hw[1]}"
    rows = []
    for v in range(videos):
        vid = f"video{v:02d}"
        write_frames(frames, vid, hw, (SECONDS[1] + 2 - 900) * 30, rng)
        for s in range(*SECONDS):
            rows += [(vid, s, 0.1, 0.2, 0.4, 0.9, 12, 0), (vid, s, 0.5, 0.1, 0.8, 0.95, 17, 1)]
    write_gt_csv(root / "gt.csv", rows)
    write_labelmap_pbtxt(root / "labels.pbtxt", [(i, f"action {i}") for i in range(1, 81)])
    return frames, root / "gt.csv", root / "labels.pbtxt"


class ForkStyleClips(Dataset):
    """The fork's loading path: every frame opened, resized with PIL and converted on its own."""

    def __init__(self, ds: AVADataset, short_side: int = 288, crop: int = 256) -> None:
        self.ds, self.short_side, self.crop = ds, short_side, crop

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> torch.Tensor:
        vid, sec = self.ds.key(i)
        info = self.ds.source.info(vid)
        idx = clip_frame_indices((sec - 900) * 30, 32, 2, info.num_frames)
        scale = self.short_side / min(info.height, info.width)
        size = (int(info.width * scale), int(info.height * scale))
        mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
        out = []
        for k in idx:
            img = Image.open(self.ds.source.frame_path(vid, int(k))).convert("RGB").resize(size)
            t = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255
            out.append(((t - mean) / std)[:, : self.crop])
        return torch.stack(out)


def clips_per_second(dataset: Dataset, workers: int, clips: int, collate) -> float:
    warmup = 2 * max(workers, 1)  # batches; excludes worker start-up
    sampler = RandomSampler(dataset, replacement=True, num_samples=clips + 2 * warmup + 2,
                            generator=torch.Generator().manual_seed(0))
    loader = DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=workers, collate_fn=collate)
    seen, start = 0, None
    for b, _ in enumerate(loader):
        if b == warmup:
            start, seen = time.perf_counter(), 0
        seen += 2
        if start is not None and seen >= clips:
            break
    if start is None:
        raise SystemExit("dataset too small for the requested number of clips")
    return seen / (time.perf_counter() - start)


def cpu_ms_per_clip(dataset: Dataset, collate, clips: int = 12) -> float:
    """CPU time per clip for loading + collating in this process (batches of 2)."""
    collate([dataset[0], dataset[1]])
    start = time.process_time()
    for i in range(0, clips, 2):
        collate([dataset[i % len(dataset)], dataset[(i + 1) % len(dataset)]])
    return (time.process_time() - start) * 1000 / clips


def normalisation_ms_per_clip(dataset: Dataset, device: str, repeats: int = 5) -> float:
    """Time of ``ClipBatch.normalized()`` for a collated batch of 2 on ``device``, per clip."""
    batch, _ = collate_ava([dataset[0], dataset[1]])
    batch = batch.to(device)
    batch.normalized()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        batch.normalized()
    sync()
    return (time.perf_counter() - start) * 1000 / (2 * repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clips", type=int, default=96, help="clips timed per configuration")
    parser.add_argument("--videos", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"workers={args.workers}, 32 frames x stride 2, batch 2, {args.clips} clips per row")
        for hw in ((256, 454), (360, 640)):
            frames, csv_path, labels = make_dataset(Path(tmp) / f"{hw[0]}", hw, args.videos)
            common = dict(frames_root=frames, num_frames=32, frame_sample_rate=2, fps=30, start_second=900)
            train = AVADataset(csv_path, labels, split="train", **common)
            val = AVADataset(csv_path, labels, split="val", **common)
            fork = ForkStyleClips(train)
            base = clips_per_second(fork, args.workers, args.clips, lambda b: b)
            print(f"frames stored at {hw[0]}x{hw[1]}:  DataLoader rate | in-process CPU ms/clip")
            print(f"  fork-style per-frame PIL resize  {base:6.1f} clips/s (1.00x) | "
                  f"{cpu_ms_per_clip(fork, lambda b: b):6.1f} ms")
            for name, ds in (("AVADataset train (jitter+crop)", train), ("AVADataset val (short 256)", val)):
                rate = clips_per_second(ds, args.workers, args.clips, collate_ava)
                print(f"  {name:32s} {rate:6.1f} clips/s ({rate / base:.2f}x) | "
                      f"{cpu_ms_per_clip(ds, collate_ava):6.1f} ms")
            devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
            print("  colour map + normalisation on the device, train clips: " + ", ".join(
                f"{d} {normalisation_ms_per_clip(train, d):.1f} ms/clip" for d in devices))


if __name__ == "__main__":
    main()
