"""Instruments on arrays and models: telemetry statistics, spectra, sharpness, landscape. They
compute; reading run folders belongs to analysis/, and so does the coordinate check (it trains
a few steps with training/step.py)."""
