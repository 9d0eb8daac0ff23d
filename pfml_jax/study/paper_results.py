"""The numbers the PFML paper reports (Recall@K in %), to print beside ours.

Source: Bhatnagar & Ahuja, CVPR 2025 (arXiv:2405.18560; docs/method.md says what we implement):
Table 1 (PFML per backbone and dataset), the 20 % label-noise table (ResNet-50, 5 runs), the
previous-best rows quoted with Table 1, and the ablations' stated points.
"""

# Table 1: (dataset, backbone) -> Recall@K; CUB/Cars report K = 1, 2, 4, SOP K = 1, 10, 100.
TABLE1 = {
    ("cub", "resnet50"): (73.4, 82.4, 88.8), ("cars", "resnet50"): (92.7, 95.5, 97.6),
    ("sop", "resnet50"): (82.9, 92.5, 96.8),
    ("cub", "bninception"): (71.5, 81.2, 88.3), ("cars", "bninception"): (90.1, 93.9, 96.3),
    ("sop", "bninception"): (80.6, 91.8, 96.4),
    ("cub", "dino"): (83.1, 89.3, 94.2), ("cars", "dino"): (94.7, 96.5, 97.8),
    ("sop", "dino"): (86.5, 95.1, 98.0),
    ("cub", "vit"): (87.8, 92.6, 95.7), ("cars", "vit"): (91.5, 95.2, 97.4),
    ("sop", "vit"): (88.2, 95.7, 98.6),
}
TABLE1_KS = {"cub": (1, 2, 4), "cars": (1, 2, 4), "sop": (1, 10, 100)}

# The 20 % label-noise table: (method recipe, dataset) -> (Recall@1, Recall@2).
NOISE_20 = {
    ("triplet", "cub"): (55.1, 68.7), ("triplet", "cars"): (67.5, 77.9),
    ("multi_similarity", "cub"): (58.9, 71.8), ("multi_similarity", "cars"): (70.4, 79.8),
    ("proxy_nca", "cub"): (60.1, 74.7), ("proxy_nca", "cars"): (74.3, 82.4),
    ("proxy_anchor", "cub"): (60.7, 75.1), ("proxy_anchor", "cars"): (76.9, 83.1),
    ("hist", "cub"): (59.7, 74.6), ("hist", "cars"): (72.9, 81.8),
    ("pfml", "cub"): (66.7, 76.9), ("pfml", "cars"): (84.5, 88.6),
}

# Clean-label ResNet-50 Recall@1 of the baselines Table 1 quotes (PFML's rows are TABLE1).
CLEAN_R50_RECALL1 = {("hist", "cub"): 71.4, ("hist", "cars"): 89.6, ("hist", "sop"): 81.4,
                     ("proxy_anchor", "cub"): 69.7, ("proxy_anchor", "cars"): 87.7}

# Ablation points the paper states (Cars-196, ResNet-50, Recall@1): the default setting
# (alpha 3, delta 0.2, M 15) is Table 1's 92.7; M = 0 gives 86.2; delta_rep - delta_att =
# 0.25 gives 83.2.
ABLATION_CARS_RECALL1 = {"alpha": {3: 92.7}, "delta": {0.2: 92.7}, "proxies": {0: 86.2, 15: 92.7},
                         "delta_gap": {0.0: 92.7, 0.25: 83.2}}


def recall(values, ks) -> tuple[tuple[str, float], ...]:
  """``((f"recall@{k}", value), ...)`` for a paper row."""
  return tuple((f"recall@{k}", value) for k, value in zip(ks, values))
