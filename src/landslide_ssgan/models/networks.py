"""Builders of the networks from the train settings and a window or patch source: the paper's
SSGAN (discriminator with N + 1 outputs and a generator), its supervised twin (the same
discriminator, two outputs, labels only) and FixMatch (the same discriminator, pseudo-labels of
weak views teaching strong views of the unlabelled windows), and the patch segmenters on one
U-Net (models/unet.py): supervised, consistency-regularised (segmatch.py) and the SSGAN carried
to patches (segssgan.py).

Each returns a compiled, built Keras model (optimizer moments included), so an interrupted run
can restore into it before training goes on.
"""

from __future__ import annotations

from typing import TypeVar

import keras
import numpy as np

from landslide_ssgan.config import TrainConfig
from landslide_ssgan.data.patches import PatchSource
from landslide_ssgan.data.source import WindowSource
from landslide_ssgan.models.augment import Bands, Strong
from landslide_ssgan.models.consistency import ConsistencySettings, ConsistencyTerm
from landslide_ssgan.models.discriminator import build_discriminator
from landslide_ssgan.models.fixmatch import FixMatch
from landslide_ssgan.models.generator import build_generator
from landslide_ssgan.models.segmatch import SegMatch
from landslide_ssgan.models.segssgan import SegSSGAN, build_patch_generator
from landslide_ssgan.models.ssgan import SSGAN, LossWeights, Supervised
from landslide_ssgan.models.unet import Segmenter, build_unet

Network = SSGAN | Supervised | FixMatch | Segmenter
S = TypeVar("S", bound=Segmenter)


def build_ssgan(cfg: TrainConfig, source: WindowSource, seed: int) -> SSGAN:
    """The paper's SSGAN: real classes plus `fake`, a generator bounded to the training
    windows' value range, the optional consistency term."""
    discriminator = _discriminator(cfg, source, outputs=3)
    low, high = source.value_range()
    generator = build_generator(cfg.latent_dim, source.window, source.channels, cfg.g_width,
                                cfg.leaky_slope, low, high)
    weights = LossWeights(cfg.loss_weights.labelled, cfg.loss_weights.unlabelled,
                          cfg.loss_weights.generated, cfg.feature_matching,
                          cfg.gradient_penalty, class_weights(cfg, source), cfg.ema)
    term = (ConsistencyTerm(discriminator, view_bands(source),
                            consistency(cfg, cfg.consistency.ssgan_weight), seed)
            if cfg.consistency.ssgan_weight > 0 else None)
    gan = SSGAN(discriminator, generator, cfg.latent_dim, weights, seed=seed, consistency=term)
    d_opt, g_opt = _adam(cfg, cfg.lr_d), _adam(cfg, cfg.lr_g)
    gan.compile(d_opt, g_opt)
    gan(_probe(source))
    d_opt.build(discriminator.trainable_variables)
    g_opt.build(generator.trainable_variables)
    return gan


def build_supervised(cfg: TrainConfig, source: WindowSource, seed: int) -> Supervised:
    """The SSGAN's supervised twin: its discriminator with two outputs, labels only."""
    discriminator = _discriminator(cfg, source, outputs=2)
    return _compiled(Supervised(discriminator, class_weights(cfg, source), cfg.ema), cfg,
                     source)


def build_fixmatch(cfg: TrainConfig, source: WindowSource, seed: int) -> FixMatch:
    """The twin's discriminator taught by its own confident answers on weak views."""
    discriminator = _discriminator(cfg, source, outputs=2)
    model = FixMatch(discriminator, view_bands(source),
                     consistency(cfg, cfg.consistency.unlabelled_weight),
                     class_weights(cfg, source), cfg.ema, seed=seed)
    return _compiled(model, cfg, source)


def build_segmenter(cfg: TrainConfig, source: PatchSource, seed: int) -> Segmenter:
    """The U-Net twin: a U-Net of train.patch trained on the labelled patches alone."""
    patch = cfg.patch
    network = build_unet(source.channels, patch.depth, patch.width, patch.dropout)
    bands = view_bands(source.source) if patch.augment else None
    model = Segmenter(network, patch.loss, weights_of(cfg, source.training_labels()), bands,
                      seed=seed, average=patch.average > 0)
    return _compiled_segmenter(model, keras.optimizers.Adam(patch.lr), source)


def build_segmatch(cfg: TrainConfig, source: PatchSource, seed: int) -> SegMatch:
    """The U-Net taught by its confident weak views of unlabelled patches (train.consistency)."""
    patch = cfg.patch
    network = build_unet(source.channels, patch.depth, patch.width, patch.dropout)
    model = SegMatch(network, view_bands(source.source),
                     consistency(cfg, cfg.consistency.unlabelled_weight), patch.loss,
                     weights_of(cfg, source.training_labels()), patch.augment, seed=seed,
                     average=patch.average > 0)
    return _compiled_segmenter(model, keras.optimizers.Adam(patch.lr), source)


def build_segssgan(cfg: TrainConfig, source: PatchSource, seed: int) -> SegSSGAN:
    """The U-Net as a per-pixel N + 1 discriminator against a generator of whole patches."""
    patch = cfg.patch
    network = build_unet(source.channels, patch.depth, patch.width, patch.dropout, outputs=3)
    low, high = source.value_range()
    generator = build_patch_generator(cfg.latent_dim, source.size, source.channels,
                                      cfg.g_width, patch.depth + 1, cfg.leaky_slope, low, high)
    weights = LossWeights(cfg.loss_weights.labelled, cfg.loss_weights.unlabelled,
                          cfg.loss_weights.generated,
                          class_weights=weights_of(cfg, source.training_labels()))
    model = SegSSGAN(network, generator, cfg.latent_dim, weights, patch.loss,
                     view_bands(source.source) if patch.augment else None, seed=seed,
                     average=patch.average > 0)
    g_opt = _adam(cfg, cfg.lr_g)
    model = _compiled_segmenter(model, keras.optimizers.Adam(patch.lr, beta_1=cfg.beta1),
                                source, g_opt)
    g_opt.build(generator.trainable_variables)
    return model


def _compiled_segmenter(model: S, optimizer: keras.optimizers.Optimizer, source: PatchSource,
                        g_optimizer: keras.optimizers.Optimizer | None = None) -> S:
    """Compiled and built, optimizer moments included (so a checkpoint restores into it)."""
    if g_optimizer is None:
        model.compile(optimizer=optimizer)
    else:
        model.compile(optimizer, g_optimizer)
    model(np.zeros((1, source.size, source.size, source.channels), np.float32))
    optimizer.build(model.network.trainable_variables)
    return model


def _discriminator(cfg: TrainConfig, source: WindowSource, outputs: int) -> keras.Model:
    return build_discriminator(source.window, source.channels, cfg.d_widths, cfg.d_hidden,
                               cfg.dropout, cfg.leaky_slope, outputs=outputs)


def _adam(cfg: TrainConfig, rate: float) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(rate, beta_1=cfg.beta1)


def _probe(source: WindowSource) -> np.ndarray:
    return np.zeros((1, source.window, source.window, source.channels), np.float32)


def _compiled(model: Supervised | FixMatch, cfg: TrainConfig,
              source: WindowSource) -> Supervised | FixMatch:
    """Compiled with the discriminator's Adam and built, optimizer moments included."""
    d_opt = _adam(cfg, cfg.lr_d)
    model.compile(d_opt)
    model(_probe(source))
    d_opt.build(model.discriminator.trainable_variables)
    return model


def consistency(cfg: TrainConfig, weight: float) -> ConsistencySettings:
    c = cfg.consistency
    return ConsistencySettings(weight, c.threshold, c.teacher_ema,
                               Strong(c.noise, c.cutout, c.band_dropout), c.feature_dropout,
                               c.rampup, c.pseudo_classes, c.pseudo_from)


def view_bands(source: WindowSource) -> Bands:
    """What the consistency term's views must know of the source's bands."""
    return Bands.of(source.bands, source.categorical, source.mean, source.std)


def class_weights(cfg: TrainConfig, source: WindowSource) -> tuple[float, float]:
    """With train.class_weighting, n / (2 n_class) per class of the labelled training
    windows (both classes weigh the same in the loss however unequal their counts); else
    one each."""
    return weights_of(cfg, source.training_labels())


def weights_of(cfg: TrainConfig, labels: np.ndarray) -> tuple[float, float]:
    """Class weights of labels (windows' or pixels') as `class_weights` describes them."""
    if not cfg.class_weighting:
        return (1.0, 1.0)
    counts = np.bincount(labels.astype(int), minlength=2).astype(float)
    if (counts == 0).any():
        return (1.0, 1.0)
    stable, landslide = counts.sum() / (2 * counts)
    return float(stable), float(landslide)
