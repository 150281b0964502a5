"""One module per `%quiv` subcommand. Importing this package registers them, in this order
(the order `%quiv help` lists them in)."""

from . import status, add, run, map, wait, cancel, log, control, listing, store, cluster, cells, help  # noqa: F401, I001
