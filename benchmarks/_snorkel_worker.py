"""Run Snorkel's LabelModel (and its MajorityLabelVoter) in the Snorkel venv: npz in, json out.

Usage: /work/venv-snorkel/bin/python benchmarks/_snorkel_worker.py IN.npz OUT.json
WRENCH protocol (data README): LabelModel fit on the train votes only; class balance from the
valid gold, (counts + 1) / n; default hyper-parameters (lr 0.01, 100 epochs); one fit per seed;
predictions with Snorkel's deterministic probs_to_preds tie rule. With ``want_train_probs`` in the
npz, also the per-seed ``predict_proba`` of the train votes (``train_probs``).
"""

from __future__ import annotations

import json
import sys

import numpy as np
from snorkel.labeling.model import LabelModel, MajorityLabelVoter
from snorkel.utils import probs_to_preds


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    z = np.load(src)
    k = int(z["k"])
    l_train, l_test, y_valid = z["l_train"], z["l_test"], z["y_valid"]
    counts = np.bincount(y_valid, minlength=k) + 1.0
    balance = counts / counts.sum()
    out = {"snorkel": {}, "mv": probs_to_preds(MajorityLabelVoter(cardinality=k).predict_proba(l_test)).tolist()}
    for seed in [int(s) for s in z["seeds"]]:
        lm = LabelModel(cardinality=k, verbose=False)
        lm.fit(l_train, class_balance=balance, n_epochs=100, lr=0.01, log_freq=100, seed=seed, progress_bar=False)
        out["snorkel"][str(seed)] = probs_to_preds(lm.predict_proba(l_test)).tolist()
        if "want_train_probs" in z.files:  # quality.py: the label model's soft train labels, for a student
            out.setdefault("train_probs", {})[str(seed)] = lm.predict_proba(l_train).tolist()
    with open(dst, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
