"""Training: window sources and the fitting recipe."""
