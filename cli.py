#!/usr/bin/env python
"""python cli.py COMMAND ...  (the same as the `minitransformer` console command)."""
from minitransformer.cli import main

if __name__ == "__main__":
    main()
