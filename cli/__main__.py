"""`python -m genrec_bench.cli ...` — the entry torchrun uses for multi-process training."""

from genrec_bench.cli.main import main

main()
