"""Instruments on arrays and models: telemetry statistics, spectra, sharpness, landscape,
coordinate checks. They compute; reading run folders belongs to analysis/."""
