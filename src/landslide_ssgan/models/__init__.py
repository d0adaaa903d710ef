"""Keras models: the discriminator, the generator and the SSGAN / supervised training wrappers."""
