"""Public transaction histories for tests: the CDNOW data sets as the `lifetimes` wheel ships them.

The CDNOW histories (Fader & Hardie's public data: 23,570 customers of a CD retailer, first purchase in
1997 Q1, transactions to mid-1998; the "1/10 sample" holds 2,357 of them) are the reference data of the
buy-till-you-die literature: the published BG/NBD and Gamma-Gamma estimates are fitted on them. They are
not stored in this repository; `lifetimes` (requirements-dev.txt, a test-only dependency used as a data
package, never imported) carries them in its wheel, and this module reads the files from there.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pandas as pd
import pytest

FILES = {"master": "lifetimes/datasets/CDNOW_master.txt", "sample": "lifetimes/datasets/CDNOW_sample.txt"}


def cdnow_path(which: str = "sample") -> Path:
    """The file of a CDNOW data set (``sample``: 2,357 customers, ``master``: 23,570); skips without it."""
    try:
        distribution = importlib.metadata.distribution("lifetimes")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            "the CDNOW data come with the test dependency lifetimes: pip install -r requirements-dev.txt"
        )
    path = Path(str(distribution.locate_file(FILES[which])))
    if not path.is_file():
        pytest.skip(f"{FILES[which]} is missing from the installed lifetimes package")
    return path


def cdnow_transactions(which: str = "sample") -> pd.DataFrame:
    """One row per CDNOW transaction record: CUSTOMER_ID (text), DATE, QUANTITY (CDs), AMOUNT (dollars).

    The files hold whitespace-separated columns: the customer id (the sample also has its own id
    after the master's), the date (YYYYMMDD), the number of CDs and the dollar value. Several
    records of one customer may share a date.
    """
    raw = pd.read_csv(cdnow_path(which), sep=r"\s+", header=None, dtype=str)
    raw = raw[raw.iloc[:, 0].str.isdigit()].reset_index(drop=True)  # the master file opens with a header
    customer, date, quantity, amount = raw.iloc[:, 0], raw.iloc[:, -3], raw.iloc[:, -2], raw.iloc[:, -1]
    return pd.DataFrame(
        {
            "CUSTOMER_ID": customer.str.lstrip("0"),
            "DATE": pd.to_datetime(date, format="%Y%m%d"),
            "QUANTITY": quantity.astype(int),
            "AMOUNT": amount.astype(float),
        }
    )


def cdnow_events(which: str = "sample") -> pd.DataFrame:
    """The CDNOW transactions as RAW_DATA events (docs/ingestion.md): one ORDER_CREATED per record.

    Each record becomes its own order (``<customer>-<n>``, numbered in file order per customer), at
    noon of its date, with the record's CD count and dollar value; the file has no product, category
    or channel, so those are constant ("" for the product, CD, mail).
    """
    records = cdnow_transactions(which)
    number = records.groupby("CUSTOMER_ID").cumcount() + 1
    order_id = records["CUSTOMER_ID"] + "-" + number.astype(str)
    return pd.DataFrame(
        {
            "EVENT_ID": "CDNOW-" + order_id,
            "EVENT_TYPE": "ORDER_CREATED",
            "EVENT_TS": records["DATE"].dt.strftime("%Y-%m-%d 12:00:00"),
            "CUSTOMER_ID": records["CUSTOMER_ID"],
            "ORDER_ID": order_id,
            "PRODUCT_ID": "",
            "CATEGORY": "CD",
            "QUANTITY": records["QUANTITY"].astype(str),
            "AMOUNT": records["AMOUNT"].map(lambda a: f"{a:.2f}"),
            "CHANNEL": "mail",
        }
    )
