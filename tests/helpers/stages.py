"""Running a stage module in-process, as its command line would."""

from __future__ import annotations

import argparse


def stage(module, *argv: str) -> None:
    """Run a stage as its command line would (the stage's own parser: its defaults included)."""
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    module.run(parser.parse_args(list(argv)))
