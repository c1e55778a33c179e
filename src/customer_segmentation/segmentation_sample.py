"""The warehouse side of training: a bounded, deterministic sample of customers comes out to pandas.

Domain code beside ``model.py``: the ``training`` pipeline and the daily retrain (``model_refresh``) both use it.
"""

from __future__ import annotations

import logging

import pandas as pd
from snowflake.snowpark import DataFrame
from snowflake.snowpark import functions as F

from customer_segmentation.errors import InvalidParametersError, MissingColumnsError
from customer_segmentation.pipelines.training.params import RFM, TrainingParams

logger = logging.getLogger(__name__)

#: Classic RFM columns carried in the sample so that segments are named after their members.
RFM_CLASSIC = ("R_SCORE", "F_SCORE", "M_SCORE", "RFM_SEGMENT")


def sample_columns(params: TrainingParams) -> list[str]:
    """CUSTOMER_ID, the model's features, then the RFM columns naming needs (each once, in that order)."""
    return list(dict.fromkeys(["CUSTOMER_ID", *params.features, *RFM, *RFM_CLASSIC]))


def sample_customer_features(customer_features: DataFrame, params: TrainingParams) -> pd.DataFrame:
    """A deterministic, bounded sample of customers (hash order), the only data pulled to pandas."""
    columns = sample_columns(params)
    stale = [c for c in RFM_CLASSIC if c not in customer_features.columns]
    if stale:
        raise MissingColumnsError(
            f"CUSTOMER_FEATURES lacks {', '.join(stale)} (segments are named after their members' classic "
            "RFM segment): rerun `kedro run --pipelines rfm_features`, then train again."
        )
    missing = [c for c in columns if c not in customer_features.columns]
    if missing:
        raise InvalidParametersError(f"training.features names unknown column(s): {', '.join(missing)}")
    total = customer_features.count()
    frame = customer_features.select(*columns)
    if total > params.sample_size:
        # MD5 of seed + id: a stable pseudo-random order, the same sample on every run and target
        seed = str(params.random_state)
        frame = frame.sort(F.md5(F.concat(F.lit(seed), F.col("CUSTOMER_ID")))).limit(params.sample_size)
    # rows by CUSTOMER_ID from the warehouse (a sort of the sample there, on two cores, instead of
    # an argsort of 200k strings in pandas: 0.13 s); checked below, sorted again only if not
    sample = frame.sort("CUSTOMER_ID").to_pandas()
    if len(sample) < params.k_min + 1:
        raise ValueError(
            f"Only {len(sample)} customers to train on: at least k_min + 1 are needed. Load more events."
        )
    for column in columns[1:]:
        if column == "RFM_SEGMENT":
            continue
        sample[column] = pd.to_numeric(sample[column], errors="coerce").astype(float)
    logger.info("Training sample: %s of %s customers pulled from the warehouse", len(sample), total)
    if not sample["CUSTOMER_ID"].is_monotonic_increasing:
        sample = sample.sort_values("CUSTOMER_ID")
    return sample.reset_index(drop=True)
