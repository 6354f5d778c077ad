"""Options shared by several commands (column mappings, output paths)."""

from __future__ import annotations

import click

customer_col = click.option("--customer-col", default="customer_id", show_default=True,
                            help="Name of the customer id column.")
time_col = click.option("--time-col", default="ts", show_default=True,
                        help="Name of the transaction timestamp column.")
amount_col = click.option("--amount-col", default="amount", show_default=True,
                          help="Name of the transaction amount column.")
