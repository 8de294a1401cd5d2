"""YouTube-VIS 2019 category names by id (1..40): released SeqFormer checkpoints use the ids as class
indices (42 outputs, 0 and 41 never positive), so ``infer vis`` can name their classes without the
annotation file."""
from __future__ import annotations

YTVIS_2019_CATEGORIES = (
    "person", "giant_panda", "lizard", "parrot", "skateboard", "sedan", "ape", "dog", "snake", "monkey",
    "hand", "rabbit", "duck", "cat", "cow", "fish", "train", "horse", "turtle", "bear",
    "motorbike", "giraffe", "leopard", "fox", "deer", "owl", "surfboard", "airplane", "truck", "zebra",
    "tiger", "elephant", "snowboard", "boat", "shark", "mouse", "frog", "eagle", "earless_seal", "tennis_racket",
)
