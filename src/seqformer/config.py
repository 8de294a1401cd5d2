"""One typed configuration for every task: dataclasses, YAML files and ``key=value`` overrides.

Option names follow the original SeqFormer CLI (``num_frames``, ``num_queries``,
``with_box_refine``, ``rel_coord``, ``lr_backbone`` ...) so a user of the original repo can
translate a shell config line by line.  A YAML file may set any subset of fields and may
``_base_: other.yaml`` (relative path) to inherit.  Overrides use dotted paths
(``optim.lr=1e-4``) or, when unambiguous, the bare seed name (``lr=1e-4``).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from seqformer.errors import SeqFormerError
from seqformer.ops import available_backends


@dataclass
class ModelConfig:
    task: str = "vis"  # "vis" (instance segmentation), "ava" (keyframe action detection), "jhmdb" | "ucf24" (action tubes)
    backbone: str = "resnet50"  # resnet50 | resnet101 | resnext101_32x8d | swin_l_p4w12 | csn50 | csn152
    backbone_weights: str | None = None  # local file with ImageNet / IG65M weights (never downloaded)
    dilation: bool = False
    position_embedding: str = "sine"  # sine | learned
    num_feature_levels: int = 4
    enc_layers: int = 6
    dec_layers: int = 6
    dim_feedforward: int = 1024
    hidden_dim: int = 256
    dropout: float = 0.1
    nheads: int = 8
    num_queries: int = 300
    enc_n_points: int = 4
    dec_n_points: int = 4
    num_frames: int = 5
    num_classes: int = 42  # 42 for YouTube-VIS 2019 ids used as indices (original), 80 for AVA
    with_box_refine: bool = True
    masks: bool = True
    rel_coord: bool = True
    mask_out_stride: int = 4
    mask_channels: int | None = None  # mask feature channels; None = hidden_dim // 32 (original: 8)
    aux_loss: bool = True
    msda_impl: str = "auto"  # auto (triton on CUDA when it imports, else pytorch) | pytorch | triton | cuda-op
    # 3-D (CSN) backbone options for action detection
    csn_temporal_strides: list[int] = field(default_factory=lambda: [1, 1, 1, 1])
    csn_last_stride: bool = False  # layer4 spatial stride 2 (True) or 1 (fork default)
    csn_frozen_stages: int = 2  # stem + layer1 + layer2 frozen (tune_point 4 in the fork)
    # action head
    actor_score: bool = True  # separate actor/no-actor logit besides the multi-label actions
    tube_features: bool = True  # action head also sees the shape of the actor's box tube (motion)
    # tube head (jhmdb / ucf24)
    presence_score: bool = True  # per-frame "actor present" logit, so tubes can start and end inside a clip


@dataclass
class LossConfig:
    set_cost_class: float = 2.0
    set_cost_bbox: float = 5.0
    set_cost_giou: float = 2.0
    box_cost: str = "l2"  # original: Euclidean cdist over concatenated frame boxes; "l1" = DETR-style
    skip_empty_frames: bool = False  # original regresses absent-instance frames to a ~0 box
    cls_loss_coef: float = 2.0
    bbox_loss_coef: float = 5.0
    giou_loss_coef: float = 2.0
    mask_loss_coef: float = 2.0
    dice_loss_coef: float = 5.0
    actor_loss_coef: float = 2.0
    focal_alpha: float = 0.25
    action_loss: str = "bce"  # bce | focal (AVA multi-label action scores)
    positive_weight: float = 1.0  # weight of positive labels (y=1) in the AVA action loss (BCE pos_weight)
    set_cost_presence: float = 1.0  # tube matching: per-frame presence BCE against the tube's extent
    presence_loss_coef: float = 2.0  # tube criterion: per-frame presence BCE of matched queries


@dataclass
class OptimConfig:
    lr: float = 2e-4
    lr_backbone: float = 2e-5
    lr_backbone_names: list[str] = field(default_factory=lambda: ["backbone.0"])
    lr_linear_proj_names: list[str] = field(default_factory=lambda: ["reference_points", "sampling_offsets"])
    lr_linear_proj_mult: float = 0.1
    weight_decay: float = 1e-4
    sgd: bool = False
    epochs: int = 12
    lr_drop: list[int] = field(default_factory=lambda: [4, 10])
    lr_gamma: float = 0.1
    clip_max_norm: float = 0.1
    batch_size: int = 2  # per process


@dataclass
class DataConfig:
    dataset_file: str = "YoutubeVIS"  # YoutubeVIS | jointcoco | ava | jhmdb | ucf24
    ytvis_path: str = "data/ytvis"
    train_ann: str = "annotations/instances_train_sub.json"
    train_img_dir: str = "train/JPEGImages"
    val_ann: str = "annotations/instances_val_sub.json"
    val_img_dir: str = "val/JPEGImages"
    coco_path: str = "data/coco"
    coco_ann: str = "annotations/instances_train2017.json"
    coco_ratio: float | None = 1.0  # COCO pseudo-videos per YouTube-VIS sample in joint training; null = all of COCO (original)
    train_scales: list[int] = field(default_factory=lambda: [288, 320, 352, 392, 416, 448, 480, 512])
    train_max_size: int = 768
    crop_scales: list[int] = field(default_factory=lambda: [400, 500, 600])
    crop_size: list[int] = field(default_factory=lambda: [384, 600])
    photometric: bool = True
    val_short_side: int = 360
    val_max_size: int | None = None  # cap on the long side at inference (original inference.py: none)
    num_workers: int = 2
    # AVA-format action detection
    ava_frames: str = "data/ava/frames"
    ava_frame_pattern: str = "{video_id}/{video_id}_{frame:06d}.jpg"  # frame is 1-based
    ava_video_dir: str | None = None  # decode clips straight from videos instead of frames
    ava_train_csv: str = "data/ava/annotations/ava_train_v2.2.csv"
    ava_val_csv: str = "data/ava/annotations/ava_val_v2.2.csv"
    ava_labelmap: str = "data/ava/annotations/ava_action_list_v2.2.pbtxt"  # training classes (80 for AVA)
    ava_eval_labelmap: str | None = None  # evaluated classes (the 60-class list for AVA); None = ava_labelmap
    ava_exclusions: str | None = "data/ava/annotations/ava_val_excluded_timestamps_v2.2.csv"
    ava_fps: float = 30  # frame rate of the extracted timeline (fractional allowed, as prepare ava --fps)
    ava_start_second: float = 900  # first extracted second (fractional allowed, as prepare ava --start-second); keyframe S -> frame (S - start) * fps
    frame_sample_rate: int = 2
    ava_train_short_side: list[int] = field(default_factory=lambda: [256, 320])
    ava_crop_size: int = 256
    ava_val_short_side: int = 256
    ava_flip_prob: float = 0.5
    ava_flip_pairs: list[list[int]] = field(default_factory=list)  # class ids swapped by a horizontal flip
    skip_corrupt_frames: bool = False
    # JHMDB-21 / UCF101-24 (ACT ground-truth pickle + one image per frame)
    jhmdb_groundtruth: str = "data/jhmdb/JHMDB-GT.pkl"  # UCF101-24: data/ucf24/UCF101v2-GT.pkl
    jhmdb_frames: str = "data/jhmdb/Frames"  # UCF101-24: data/ucf24/rgb-images
    jhmdb_frame_pattern: str = "{video_id}/{frame:05d}.png"  # frame is 1-based; UCF101-24: "{video_id}/{frame:05d}.jpg"
    jhmdb_split: int = 1  # trains on train_videos[split - 1], validates on test_videos[split - 1]
    jhmdb_centre_stride: int = 1  # training clips are centred on every n-th frame of a video
    jhmdb_train_short_side: list[int] = field(default_factory=lambda: [224, 256])
    jhmdb_crop_size: int = 224
    jhmdb_val_short_side: int = 240
    jhmdb_flip_prob: float = 0.5


@dataclass
class TrainConfig:
    output_dir: str = "outputs/run"
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda
    resume: str | None = None  # checkpoint to continue from, or "auto" (OUTPUT_DIR/checkpoint.pth if present)
    overwrite: bool = False  # delete an earlier run's files in output_dir and start clean (else such a folder is refused)
    keep_checkpoints: int | None = None  # newest per-epoch checkpointNNNN.pth kept; None = all, 0 = none
    #                                      (checkpoint.pth = last and checkpoint_best.pth are always kept)
    num_threads: int | None = None  # torch CPU threads; None = cores available to the process / local processes
    start_epoch: int = 0
    pretrain_weights: str | None = None
    jointfinetune: bool = False
    val_freq: int = 1
    log_every: int = 20
    max_iters_per_epoch: int | None = None  # for smoke tests
    amp: str = "none"  # none | bf16 | fp16 (fp16 with loss scaling); see seqformer.engine.precision
    compile: bool = False  # torch.compile the transformer layers and mask FPN (first steps compile)
    find_unused_parameters: bool = True


@dataclass
class EvalConfig:
    topk: int = 10  # YouTube-VIS: detections per video (original inference.py)
    mask_threshold: float = 0.5
    null_score: float = 0.001
    max_frames_per_clip: int = 64  # longer videos are split into linked overlapping clips (0 = never)
    clip_overlap: int = 8
    ava_detections_per_keyframe: int = 50  # highest-scoring (box, class) rows written per keyframe (official cap: 50)
    # tube prediction (jhmdb / ucf24): sliding clips, linking, per-frame detections (docs/jhmdb_ucf.md)
    tube_clip_step: int = 0  # frames between the centres of consecutive clips; 0 = half a clip's span
    tube_labels_per_query: int = 3  # each query's best classes become tubelets
    tube_min_score: float = 0.01  # tubelets scoring less are dropped
    tube_link_iou: float = 0.5  # a tubelet extends a tube of its label when the mean box IoU of shared frames >= this (MOC: 0.5)
    tube_presence_threshold: float = 0.5  # tube ends are trimmed to frames whose mean presence reaches this
    tube_frame_nms: float = 0.6  # per-frame, per-label NMS of the frame detections (MOC: 0.6); 1 = off
    amp: str = "none"  # none | bf16 | fp16 autocast for prediction; none = float32, the exact reference
    compile: bool = False  # torch.compile the transformer layers and mask FPN for prediction


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ConfigError(SeqFormerError, ValueError):
    pass


# Backbones built from scratch by design: a model.backbone_weights file would be silently ignored.
BACKBONES_WITHOUT_WEIGHTS = ("tiny",)
AMP_MODES = ("none", "bf16", "fp16")
MSDA_IMPLS = ("auto", "pytorch", "triton", "cuda-op")


def _coerce(value: Any, typ: Any, where: str) -> Any:
    origin = get_origin(typ)
    if origin is None and typ in (int, float, str, bool):
        if typ is bool:
            if isinstance(value, bool):
                return value
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        if typ is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if typ in (int, float) and isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}") from None
            if typ is float:
                return number
            if number.is_integer():
                return int(number)
        if typ is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, typ) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}")
        return value
    args = get_args(typ)
    if type(None) in args:  # Optional[X]
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)][0]
        return _coerce(value, inner, where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    return value


# options whose type changed: old values (e.g. in configs saved inside checkpoints) -> new ones
_LEGACY_VALUES: dict[tuple[str, str], dict[Any, Any]] = {
    ("TrainConfig", "amp"): {False: "none", True: "fp16"},  # was a bool: CUDA float16 autocast + GradScaler
}


def _apply(obj: Any, data: dict[str, Any], where: str) -> None:
    hints = get_type_hints(type(obj))
    names = {f.name for f in fields(obj)}
    for key, value in data.items():
        legacy = _LEGACY_VALUES.get((type(obj).__name__, key))
        if legacy and isinstance(value, bool) and value in legacy:
            value = legacy[value]
        if key not in names:
            raise ConfigError(f"{where}: unknown option {key!r} (known: {', '.join(sorted(names))})")
        current = getattr(obj, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a mapping")
            _apply(current, value, f"{where}.{key}")
        else:
            setattr(obj, key, _coerce(value, hints[key], f"{where}.{key}"))


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular _base_")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    base = data.pop("_base_", None)
    if base is None:
        return data
    merged = _read_yaml(path.parent / base, seen + (path,))
    return _deep_merge(merged, data)


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _resolve_key(cfg: Config, key: str) -> list[str]:
    parts = key.split(".")
    if len(parts) > 1:
        return parts
    owners = [f.name for f in fields(cfg) if key in {g.name for g in fields(getattr(cfg, f.name))}]
    if len(owners) != 1:
        msg = "unknown" if not owners else f"ambiguous (in {', '.join(owners)})"
        raise ConfigError(f"override {key!r}: {msg} option; use section.option")
    return [owners[0], key]


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        parts = _resolve_key(cfg, key.strip())
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            reason = " ".join(str(getattr(e, "problem", None) or e).split())
            raise ConfigError(f"override {item!r}: value {raw!r} is not valid YAML ({reason}); "
                              "quote strings and lists in the shell, e.g. 'optim.lr_drop=[8,11]'") from None
        nested: dict[str, Any] = {parts[-1]: value}
        for p in reversed(parts[:-1]):
            nested = {p: nested}
        _apply(cfg, nested, "override")
    return cfg


def overrides_from_mapping(data: dict, prefix: str = "") -> list[str]:
    """``section.option=value`` overrides for a nested mapping (the inverse of :func:`apply_overrides`),
    so a generated ``dataset.yaml`` joins the command line's overrides rather than replacing the config."""
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out += overrides_from_mapping(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    cfg = Config()
    if path is not None:
        _apply(cfg, _read_yaml(Path(path)), str(path))
    apply_overrides(cfg, overrides or [])
    validate(cfg)
    return cfg


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def validate(cfg: Config) -> None:
    m = cfg.model
    if m.task not in ("vis", "ava", "jhmdb", "ucf24"):
        raise ConfigError(f"model.task must be 'vis', 'ava', 'jhmdb' or 'ucf24', got {m.task!r}")
    if m.hidden_dim % m.nheads or (m.hidden_dim // m.nheads) % 1:
        raise ConfigError("model.hidden_dim must be divisible by model.nheads")
    if m.mask_channels is not None and m.mask_channels < 1:
        raise ConfigError(f"model.mask_channels must be positive (or null for hidden_dim / 32), got {m.mask_channels}")
    if m.masks and m.mask_channels is None and m.hidden_dim % 32:
        raise ConfigError("model.masks needs hidden_dim divisible by 32 (mask branch uses hidden_dim/32 channels) "
                          "or model.mask_channels set")
    if m.num_frames < 1 or m.num_queries < 1 or m.num_classes < 1:
        raise ConfigError("num_frames, num_queries and num_classes must be positive")
    for where, amp in (("train.amp", cfg.train.amp), ("eval.amp", cfg.eval.amp)):
        if amp not in AMP_MODES:
            raise ConfigError(f"{where} must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    if m.msda_impl not in MSDA_IMPLS and m.msda_impl not in available_backends():
        raise ConfigError(f"model.msda_impl must be one of {', '.join(MSDA_IMPLS)}, got {m.msda_impl!r}")
    if cfg.loss.box_cost not in ("l1", "l2"):
        raise ConfigError("loss.box_cost must be 'l1' or 'l2'")
    for name in ("lr", "lr_backbone", "lr_linear_proj_mult", "weight_decay", "clip_max_norm"):
        value = getattr(cfg.optim, name)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"optim.{name} must be a non-negative number, got {value}")
    if cfg.optim.batch_size < 1 or cfg.optim.epochs < 0:
        raise ConfigError(f"optim.batch_size must be >= 1 and optim.epochs >= 0, got {cfg.optim.batch_size} "
                          f"and {cfg.optim.epochs}")
    if m.backbone_weights and m.backbone.lower() in BACKBONES_WITHOUT_WEIGHTS:
        raise ConfigError(f"model.backbone_weights={m.backbone_weights} cannot be used with model.backbone="
                          f"{m.backbone} (it has no pretrained weights); set model.backbone_weights=null")
    if not math.isfinite(cfg.data.ava_start_second) or not math.isfinite(cfg.data.ava_fps) or cfg.data.ava_fps <= 0:
        raise ConfigError(f"data.ava_fps must be positive and data.ava_start_second finite, got "
                          f"{cfg.data.ava_fps} and {cfg.data.ava_start_second}")
    if m.task in ("jhmdb", "ucf24"):
        if cfg.data.jhmdb_split < 1 or cfg.data.jhmdb_centre_stride < 1 or cfg.eval.tube_clip_step < 0:
            raise ConfigError("data.jhmdb_split and data.jhmdb_centre_stride must be >= 1, eval.tube_clip_step >= 0")
        if not 0 <= cfg.eval.tube_link_iou <= 1 or not 0 <= cfg.eval.tube_presence_threshold <= 1:
            raise ConfigError("eval.tube_link_iou and eval.tube_presence_threshold must lie in [0, 1]")
