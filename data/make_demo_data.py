"""Derive data/breast_cancer.csv from the Wisconsin Diagnostic Breast Cancer data bundled with scikit-learn.

Run from the repository root:  .venv/bin/python data/make_demo_data.py
The output is deterministic: same scikit-learn data, same column order, row order and number formatting.
"""

from pathlib import Path

from sklearn.datasets import load_breast_cancer

OUTPUT = Path(__file__).resolve().parent / "breast_cancer.csv"


def main() -> None:
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame
    # Keep the "mean" and "worst" measurements (drop the 10 "error" columns) to stay under 100 KB.
    features = [column for column in bunch.feature_names if not column.endswith(" error")]
    demo = frame[features].rename(columns=lambda name: name.replace(" ", "_"))
    # scikit-learn encodes the diagnosis as 0 = malignant, 1 = benign; write the names instead.
    demo["label"] = bunch.target_names[frame["target"].to_numpy()]
    demo.to_csv(OUTPUT, index=False)
    print(f"wrote {OUTPUT} ({len(demo)} rows, {demo.shape[1]} columns, {OUTPUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
