"""Whatever reads run folders to show them: snapshots, sampling, inspection, the coordinate
check, plots, Hugging Face import and export, benchmarks."""
