"""Runs NannyML's CBPE (confidence-based performance estimation: accuracy of a binary
classifier) on the estimated-performance benchmark's data. It runs under the peers' own virtual
environment, not the package's:

    .bench-venv/bin/python bench/peer_cbpe.py DATA.npz CHUNK_SIZE

DATA.npz holds `reference.score`, `reference.prediction`, `reference.label` (the labelled
reference CBPE calibrates on) and `analysis.score`, `analysis.prediction` (no labels). Prints one
JSON object: the NannyML version, the first analysis row of each chunk and its estimated accuracy.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def main(path: str, chunk_size: int) -> None:
    # Imported here: they exist only in the peers' environment, and the package imports this module.
    import nannyml
    import pandas as pd

    data = np.load(path)

    def frame(prefix: str, columns: tuple[str, ...]) -> pd.DataFrame:
        return pd.DataFrame({name: data[f"{prefix}.{name}"] for name in columns})

    estimator = nannyml.CBPE(
        problem_type="classification_binary",
        y_pred_proba="score",
        y_pred="prediction",
        y_true="label",
        metrics=["accuracy"],
        chunk_size=chunk_size,
    )
    estimator.fit(frame("reference", ("score", "prediction", "label")))
    results = (
        estimator.estimate(frame("analysis", ("score", "prediction")))
        .filter(period="analysis")
        .to_df()
    )
    print(
        json.dumps(
            {
                "version": nannyml.__version__,
                "chunk_starts": results[("chunk", "start_index")].astype(int).tolist(),
                "accuracy": results[("accuracy", "value")].astype(float).tolist(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
