"""Third-party face-swap baselines re-built for mfsbench."""
