"""Whatever reads run folders to show them: snapshots, sampling, inspection, plots, Hugging Face
import and export, benchmarks."""
