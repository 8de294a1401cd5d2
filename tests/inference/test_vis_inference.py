"""``seqformer predict vis``: official submission format, original post-processing, input errors."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from seqformer.cli import main
from seqformer.config import load_config
from seqformer.inference.vis import VideoInputError, load_frames, read_videos
from seqformer.structures import clip_batch_from_tensor

from helpers import build_model_for

TINY = {"model": {"num_queries": 16, "enc_layers": 1, "dec_layers": 2, "hidden_dim": 64,
                  "dim_feedforward": 128, "nheads": 4, "num_classes": 6}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("vis")
    cfg_path = root / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(TINY))
    torch.manual_seed(0)
    model = build_model_for(load_config(cfg_path))
    with torch.no_grad():  # perturb so that scores spread and masks are non-trivial
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.detr.class_embed[-1].bias.add_(4.0)
    torch.save({"model": model.state_dict()}, root / "w.pth")
    rng = np.random.default_rng(0)
    videos = []
    for v, (h, w, n) in enumerate([(60, 90, 3), (72, 64, 2)]):
        names = []
        (root / "img" / f"v{v}").mkdir(parents=True)
        for t in range(n):
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "img" / f"v{v}" / f"{t}.jpg")
            names.append(f"v{v}/{t}.jpg")
        videos.append({"id": v + 1, "file_names": names, "length": n, "height": h, "width": w})
    (root / "valid.json").write_text(json.dumps({"videos": videos, "categories": []}))
    return root, model.eval(), videos


def test_predict_writes_official_format(setup):
    root, model, videos = setup
    out = root / "results.json"
    rc = main(["predict", "vis", "--config", str(root / "tiny.yaml"), "--weights", str(root / "w.pth"),
               "--images", str(root / "img"), "--annotations", str(root / "valid.json"), "--out", str(out), "--zip"])
    assert rc == 0
    results = json.loads(out.read_text())
    assert results, "expected some detections"
    by_video = {v["id"]: v for v in videos}
    for r in results:
        assert set(r) == {"video_id", "video_name", "score", "category_id", "segmentations"}
        v = by_video[r["video_id"]]
        assert len(r["segmentations"]) == v["length"]
        for seg in r["segmentations"]:
            assert isinstance(seg["counts"], str)
            assert mask_util.decode(seg).shape == (v["height"], v["width"])
    with zipfile.ZipFile(root / "results.zip") as zf:
        assert zf.namelist() == ["results.json"]

    # Re-derive video 1's entries from the model outputs with the original's rules.
    v = read_videos(root / "valid.json")[0]
    frames, size = load_frames(root / "img", v)
    out_model = model.inference(clip_batch_from_tensor(frames))
    scores = out_model["pred_logits"][0].sigmoid()
    top = torch.topk(scores.flatten(), 10).indices.tolist()
    expected = []
    for q in dict.fromkeys(i // 6 for i in top):
        m = F.interpolate(out_model["pred_masks"][0][q][:, None], size, mode="bilinear").sigmoid() > 0.5
        if not m.any():
            continue
        expected += [(q, c, m) for c in [i % 6 for i in top if i // 6 == q]]
    got = [r for r in results if r["video_id"] == 1]
    assert len(got) == len(expected)
    for r, (q, c, m) in zip(got, expected):
        assert r["category_id"] == c
        assert r["score"] == pytest.approx(float(scores[q, c]), abs=1e-6)
        decoded = np.stack([mask_util.decode(s) for s in r["segmentations"]])
        assert (decoded == m[:, 0].numpy()).mean() > 0.999


def test_input_errors_name_the_file(tmp_path, setup):
    root, _, _ = setup
    (tmp_path / "bad.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(VideoInputError, match="bad.json"):
        read_videos(tmp_path / "bad.json")
    (tmp_path / "notjson.json").write_text("{oops")
    with pytest.raises(VideoInputError, match="notjson.json"):
        read_videos(tmp_path / "notjson.json")
    v = read_videos(root / "valid.json")[0]
    v.file_names = v.file_names + ["v0/missing.jpg"]
    with pytest.raises(VideoInputError, match="missing.jpg"):
        load_frames(root / "img", v)
    (root / "img" / "v0" / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    v.file_names = v.file_names[:-1] + ["v0/broken.jpg"]
    with pytest.raises(VideoInputError, match="broken.jpg"):
        load_frames(root / "img", v)
