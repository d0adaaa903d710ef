"""Landslide identification with a semi-supervised GAN (SSGAN) as a reproducible MLOps project."""

__version__ = "0.1.0"
