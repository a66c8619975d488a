"""Studies: many runs and what they show (sweeps, experiments with verdicts, lottery tickets)."""
