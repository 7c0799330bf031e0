"""glc: a GeoLifeCLEF-style species distribution modelling pipeline.

Raw GLC24 files -> Spark ETL -> parquet -> Petastorm -> PyTorch Lightning -> set decoding -> Kaggle submission.
The Luigi DAG lives in :mod:`glc.tasks`; ``python -m glc`` is the command-line entry point.
"""

__version__ = "0.1.0"
