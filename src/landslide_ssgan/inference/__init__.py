"""Whole-area inference: block maps, the dense twin, landslide bodies."""
