"""RAW_DATA as a dataset: loaded like any Snowpark table, appended to in bulk from pandas."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from customer_segmentation.datasets.snowpark import SnowparkTableDataset
from customer_segmentation.errors import MissingColumnsError
from customer_segmentation.warehouse.tables import RAW_COLUMNS, append_pandas, create_table_sql, table_columns

logger = logging.getLogger(__name__)


class RawEventsDataset(SnowparkTableDataset):
    """The RAW_DATA table: loads as a Snowpark DataFrame; saving a pandas frame appends its rows.

    A pandas save creates the table with the RAW_DATA contract columns when it is missing, then
    bulk-appends (``write_pandas``: stage + COPY, in the dataset's database and schema; Snowpark's
    ``create_dataframe`` of pandas is not used because the embedded warehouse cannot resolve its
    quoted temporary stage). An empty
    frame writes nothing and creates nothing. Snowpark DataFrames are saved as by the parent class
    (``save_args.mode``).
    """

    def save(self, data: Any) -> None:
        if not isinstance(data, pd.DataFrame):
            super().save(data)
            return
        if data.empty:
            logger.debug("Nothing to append to %s", self.fqn)
            return
        session = self.session
        columns = table_columns(session, self._database, self._schema, self._table_name)
        if not columns:
            session.sql(
                create_table_sql(self._database, self._schema, self._table_name, RAW_COLUMNS)
            ).collect()
        else:
            missing = [c for c in data.columns if str(c).upper() not in columns]
            if missing:
                raise MissingColumnsError(
                    f"Table {self.fqn} lacks column(s) {', '.join(map(str, missing))} (it has {', '.join(columns)}); "
                    "nothing was appended. Add them, or use a RAW_DATA with the contract columns (README)."
                )
        append_pandas(session, self._table_name, data, self._database, self._schema)
