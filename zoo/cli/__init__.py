"""The `semzoo` command line (typer)."""
