"""The `dhal` subcommands: one module per command, each a typed config plus a `run` function."""
