"""Score artifacts: per-survey top-N species with probabilities, written by every model."""
