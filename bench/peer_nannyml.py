"""Runs NannyML's UnivariateDriftCalculator (default methods and thresholds) on the peers
benchmark's data. It runs under the peers' own virtual environment, not the package's:

    .bench-venv/bin/python bench/peer_nannyml.py DATA.npz CHUNK_SIZE

and prints one JSON object: the NannyML version, seconds to build the DataFrames, to fit on
the reference and to calculate on the analysis data, peak RSS (bytes), the chunk boundaries
(first and last row of each analysis chunk) and, per column, the indices of alerting chunks.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

import numpy as np


def main(path: str, chunk_size: int) -> None:
    # Imported here: they exist only in the peers' environment, and the package imports this module.
    import nannyml
    import pandas as pd

    def frame(data: Any, prefix: str, names: list[str]) -> pd.DataFrame:
        return pd.DataFrame({name: data[f"{prefix}{name}"] for name in names})

    data = np.load(path)
    names = [str(name) for name in data["names"]]
    started = time.perf_counter()
    reference, analysis = frame(data, "reference.", names), frame(data, "analysis.", names)
    built = time.perf_counter()
    calculator = nannyml.UnivariateDriftCalculator(column_names=names, chunk_size=chunk_size)
    calculator.fit(reference)
    fitted = time.perf_counter()
    results = calculator.calculate(analysis).filter(period="analysis").to_df()
    calculated = time.perf_counter()
    alerts = {}
    for name in names:
        flags = (
            results.xs(name, axis=1, level=0).xs("alert", axis=1, level=-1).any(axis=1).to_numpy()
        )
        alerts[name] = np.flatnonzero(flags).tolist()
    chunks = results["chunk"]["chunk"]
    print(
        json.dumps(
            {
                "version": nannyml.__version__,
                "build_s": built - started,
                "fit_s": fitted - built,
                "calculate_s": calculated - fitted,
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "chunk_rows": list(
                    zip(
                        chunks["start_index"].astype(int).tolist(),
                        chunks["end_index"].astype(int).tolist(),
                    )
                ),
                "alerts": alerts,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
