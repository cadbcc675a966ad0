"""Where is the classification label in this cohort, and can an encoder's pooled embedding carry it?

The classification task's positive control (an encoder trained on PI-RADS >= 4 on the pre-training pool) was not
detected on either model in the committed ``cpu`` run, and ProViCNet's scored below chance on two seeds. This
script separates the possible causes, on the profile's cohort (``results/<profile>/data``):

* **the label is in the images**: the AUROC of PI-RADS >= 4 from the lesion mask's voxel count (an oracle that
  knows where the lesion is), and from an intensity cue a network could read without localising anything (the 1st
  percentile of ADC inside the gland over its median, lower = more suspicious);
* **an encoder's pooled embedding carries it**: for each ``--encoders`` source of ``--model`` (the positive controls
  trained on ``classification`` and on ``segmentation``; ``scratch``: a random encoder), a logistic regression
  (standardised features, C = 0.1) fitted on the pooled embedding -- what the classification head reads -- of the
  first 256 pre-training-pool cases, scored by AUROC on the pool itself and on the test split.

A positive-control encoder is the profile's own file (trained first when missing or stale, which needs the native
pre-training: ``python -m transferlimits pretrain --model M --profile P``). Single-threaded.

    .venv/bin/python benchmarks/classification_signal.py --model profound --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from transferlimits.config import get_profile
from transferlimits.data.cohort import open_cohort, task_dataset
from transferlimits.runner.provenance import hardware_line
from transferlimits.study.encoder_sources import POSITIVE_POOL_CASES, encoder_source
from transferlimits.study.features import extract_features
from transferlimits.study.runs import scratch_encoder
from transferlimits.training.pretrain_record import load_pretrained_encoder

SOURCES = ("classification", "segmentation", "scratch")


def image_cues(cohort) -> dict[str, dict[str, float]]:
    """Per split: AUROC of PI-RADS >= 4 from the lesion voxel count (oracle) and from the gland's low-ADC tail."""
    out = {}
    for split in ("pretrain", "train", "val", "test"):
        rows = []
        for case in cohort.cases(split):
            gland = case.zones > 0
            adc = np.asarray(case.adc, np.float64)[gland]
            rows.append((float((case.lesion > 0).sum()), np.percentile(adc, 1) / np.median(adc),
                         int(case.clinical.get("pirads") or 0) >= 4))
        vol, tail, label = (np.array(c) for c in zip(*rows))
        out[split] = {"n": len(rows), "positives": int(label.sum()),
                      "oracle_lesion_voxels": float(roc_auc_score(label, vol)),
                      "adc_low_tail": float(roc_auc_score(label, -tail))}
    return out


def pooled_probe(encoder: torch.nn.Module, pool, test) -> dict[str, float]:
    """AUROC of a logistic regression on the pooled embedding, fitted on ``pool``, on ``pool`` and on ``test``."""
    def embed(ds):
        feats = extract_features(encoder, ds, "cpu", batch_size=8).pooled
        labels = np.array([int(np.asarray(ds[i]["y"])) >= 2 for i in range(len(ds))])
        return feats, labels
    (xp, yp), (xt, yt) = embed(pool), embed(test)
    scaler = StandardScaler().fit(xp)
    clf = LogisticRegression(C=0.1, max_iter=5000).fit(scaler.transform(xp), yp)
    return {"pool": float(roc_auc_score(yp, clf.decision_function(scaler.transform(xp)))),
            "test": float(roc_auc_score(yt, clf.decision_function(scaler.transform(xt))))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--model", default="profound", choices=["profound", "provicnet"])
    p.add_argument("--encoders", nargs="+", default=list(SOURCES), choices=list(SOURCES),
                   help="whose pooled embedding to probe (default: all)")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    prof = get_profile(args.profile)
    cohort = open_cohort(prof)
    cues = image_cues(cohort)
    for split, row in cues.items():
        print(f"{split:8s} n {row['n']:3d}  PI-RADS>=4 {row['positives']:3d}  AUROC lesion voxels (oracle) "
              f"{row['oracle_lesion_voxels']:.3f}  low-ADC tail {row['adc_low_tail']:.3f}", flush=True)
    full = task_dataset(cohort, "classification", "pretrain", args.model, 0)
    pool = torch.utils.data.Subset(full, range(min(len(full), POSITIVE_POOL_CASES)))
    test = task_dataset(cohort, "classification", "test", args.model, 0)
    probes = {}
    for source in args.encoders:
        if source == "scratch":
            enc = scratch_encoder(prof, args.model, 0)
        else:
            path = encoder_source("positive").encoder_file(prof, args.model, source, "cpu")
            enc = load_pretrained_encoder(path, "cpu")[0]
        probes[source] = pooled_probe(enc.eval(), pool, test)
        print(f"{args.model} pooled embedding of the {source} encoder: probe AUROC pool "
              f"{probes[source]['pool']:.3f}, test {probes[source]['test']:.3f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"profile": args.profile, "model": args.model, "hardware": hardware_line(),
                                         "image_cues": cues, "pooled_probe": probes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
