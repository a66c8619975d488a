"""Named experiments: a claim about initialization or warmup, the runs that test it (through the
sweep engine, studies/sweep.py), and a report with a verdict from a rule fixed in code.
registry.py lists the studies; runner.py runs them; report.py writes what they found."""
