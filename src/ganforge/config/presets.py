"""Named presets: the classic configurations as partial mappings applied over the schema's defaults.

A preset is ``name -> (one-line description, mapping)``; ``--set`` overrides and YAML files apply
on top (:func:`ganforge.config.resolve`).
"""

from __future__ import annotations

import copy

from ..errors import ConfigError
from ..registry import did_you_mean
from .schema import Config

# a penalised critic has no batch norm (the penalty is per sample; Gulrajani et al. 2017, section 4)
_PENALISED_CRITIC = {"norm": "none"}
_PIX2PIX = {  # shared by the pix2pix and deblur presets (they differ in the data)
    "model": {"arch": "pix2pix", "z_dim": 0, "init": "normal", "init_gain": 0.02},
    "loss": {"name": "ns", "terms": {"l1": 100.0}},
    "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]},
    "train": {"batch_size": 16}, "eval": {"best": ""}}

PRESETS: dict[str, tuple[str, dict]] = {
    "vanilla": (
        "Goodfellow et al. 2014: MLP G and D (Linear+BN+ReLU/LeakyReLU), non-saturating loss",
        {"model": {"arch": "mlp", "init": "xavier", "init_gain": 1.0},
         "loss": {"name": "ns"}, "optim": {"lr_g": 2e-4, "lr_d": 2e-4}},
    ),
    "vanilla-minimax": (
        "Goodfellow et al. 2014 with the saturating minimax loss, exactly V(D, G)",
        {"model": {"arch": "mlp", "init": "xavier", "init_gain": 1.0},
         "loss": {"name": "minimax"}},
    ),
    "dcgan": (
        "Radford et al. 2015: strided (transposed) convs, BN, ReLU/LeakyReLU, N(0, 0.02) init",
        {"model": {"arch": "dcgan", "init": "normal", "init_gain": 0.02},
         "loss": {"name": "ns"}, "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4,
                                            "betas": [0.5, 0.999]}},
    ),
    "wgan": (
        "Arjovsky et al. 2017: DCGAN critic (batch norm, no sigmoid), weight clipping 0.01, RMSprop 5e-5, "
        "n_critic 5",
        {"model": {"arch": "dcgan"},  # the DCGAN D with batch norm, as the paper's code: clipping needs it
         "loss": {"name": "wasserstein", "clip": 0.01},
         "optim": {"name": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5},
         "train": {"n_critic": 5}},
    ),
    "wgan-gp": (
        "Gulrajani et al. 2017: gradient penalty (lambda 10) at per-sample interpolates, Adam(0, 0.9)",
        {"model": {"arch": "dcgan", "d": _PENALISED_CRITIC},
         "loss": {"name": "wasserstein", "penalties": {"gp": 10.0}},
         "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.0, 0.9]},
         "train": {"n_critic": 5}},
    ),
    "wgan-lp": (
        "Petzka et al. 2018: one-sided Lipschitz penalty E[max(0, |grad D| - 1)^2], lambda 10",
        {"model": {"arch": "dcgan", "d": _PENALISED_CRITIC},
         "loss": {"name": "wasserstein", "penalties": {"lp": 10.0}},
         "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.0, 0.9]},
         "train": {"n_critic": 5}},
    ),
    "lsgan": (
        "Mao et al. 2017: least-squares loss (a=0, b=1, c=1) on DCGAN nets",
        {"model": {"arch": "dcgan"}, "loss": {"name": "ls"},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}},
    ),
    "hinge": (
        "Hinge loss (Lim & Ye 2017; Miyato et al. 2018) on DCGAN nets, Adam(0.5, 0.999)",
        {"model": {"arch": "dcgan"}, "loss": {"name": "hinge"},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}},
    ),
    # -- modern and conditional GANs ---------------------------------------------------------
    "sngan": (
        "Miyato et al. 2018: ResNet G/D, spectral norm in D, hinge loss, n_critic 5, Adam(2e-4; 0, 0.9)",
        {"model": {"arch": "resnet", "init": "xavier", "init_gain": 1.0},
         "loss": {"name": "hinge"},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.0, 0.9]},
         "train": {"n_critic": 5}},
    ),
    "cgan": (
        "Mirza & Osindero 2014: the label concatenated to G's input and to D's input (DCGAN nets)",
        {"model": {"arch": "dcgan", "conditional": True, "d": {"cond": "concat"}},
         "loss": {"name": "ns"}, "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}},
    ),
    "acgan": (
        "Odena et al. 2017: D also classifies (auxiliary cross-entropy on real and generated), DCGAN nets",
        {"model": {"arch": "dcgan", "conditional": True, "d": {"cond": "acgan"}},
         "loss": {"name": "ns", "terms": {"aux": 1.0}},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}},
    ),
    "projection": (
        "Miyato & Koyama 2018: projection D + class-conditional BN in G, ResNet nets with spectral "
        "norm, hinge loss, n_critic 5",
        {"model": {"arch": "resnet", "conditional": True, "init": "xavier", "init_gain": 1.0},
         "loss": {"name": "hinge"},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.0, 0.9]},
         "train": {"n_critic": 5}},
    ),
    "projection-dcgan": (
        "projection D and class-conditional G on DCGAN nets, hinge loss, one D step: the CPU-budget "
        "conditional preset",
        {"model": {"arch": "dcgan", "conditional": True, "d": {"cond": "projection"}},
         "loss": {"name": "hinge"},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}},
    ),
    "biggan": (
        "Brock et al. 2019, small: shared class embedding + hierarchical z into conditional BN, "
        "self-attention, SN in G and D, orthogonal reg. 1e-4, TTUR (5e-5 / 2e-4), 2 D steps, EMA "
        "(the CPU size drops G's SN and trains at 8e-4)",
        {"model": {"arch": "biggan", "conditional": True, "init": "orthogonal", "init_gain": 1.0,
                   "z_dim": 120},
         "loss": {"name": "hinge", "terms": {"ortho": 1e-4}},
         "optim": {"name": "adam", "lr_g": 5e-5, "lr_d": 2e-4, "betas": [0.0, 0.999]},
         "train": {"n_critic": 2, "ema": 0.999}},
    ),
    "pacgan": (
        "Lin et al. 2018: DCGAN with a packed discriminator (D judges 2 samples at a time)",
        {"model": {"arch": "dcgan", "d": {"pack": 2}}, "loss": {"name": "ns"},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}},
    ),
    "stylegan2": (
        "Karras et al. 2020: mapping net, modulated convs, noise, skip G, residual D with minibatch std; "
        "non-saturating loss, lazy R1 (every 16), lazy path length (2, every 4), style mixing 0.9, EMA "
        "(the CPU size drops path length and mixing and trains at 1e-2)",
        {"model": {"arch": "stylegan2", "z_dim": 128, "init": "default", "g": {"mixing_prob": 0.9}},
         "loss": {"name": "ns", "penalties": {"r1": 0.01}, "penalty_every": 16, "terms": {"pl": 2.0},
                  "pl_every": 4},
         "optim": {"name": "adam", "lr_g": 2e-3, "lr_d": 2e-3, "betas": [0.0, 0.99]},
         "train": {"batch_size": 32, "ema": 0.999}},
    ),
    "sagan": (
        "Zhang et al. 2019: ResNet G/D with self-attention, spectral norm in G and D, conditional BN G and "
        "projection D, hinge loss, TTUR (1e-4 / 4e-4), Adam(0, 0.9) (the CPU size drops G's SN and trains at 8e-4 "
        "from an orthogonal init, with an EMA)",
        {"model": {"arch": "sagan", "conditional": True, "init": "xavier", "init_gain": 1.0},
         "loss": {"name": "hinge"},
         "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 4e-4, "betas": [0.0, 0.9]}},
    ),
    # -- image-to-image ------------------------------------------------------------------------
    "pix2pix": (
        "Isola et al. 2017: U-Net G, conditional PatchGAN D, adversarial + 100 x L1; edges -> item",
        {"data": {"name": "fmnist-edges"}, **_PIX2PIX},
    ),
    "deblur": (
        "pix2pix machinery on blurred -> sharp Fashion-MNIST pairs",
        {"data": {"name": "fmnist-blur"}, **_PIX2PIX},
    ),
    "cyclegan": (
        "Zhu et al. 2017: two ResNet Gs, two PatchGAN Ds, LSGAN loss, cycle 10, identity 0.5, "
        "pool of 50, linear decay over the second half; sneakers <-> ankle boots",
        {"data": {"name": "fmnist-shoes"},
         "model": {"arch": "cyclegan", "z_dim": 0, "init": "normal", "init_gain": 0.02},
         "loss": {"name": "ls", "terms": {"cycle": 10.0, "identity": 0.5}, "pool": 50},
         "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999], "schedule": "linear",
                   "decay_start": 0.5},
         "train": {"batch_size": 8}, "eval": {"best": ""}},
    ),
    "srgan": (
        "Ledig et al. 2017: SRResNet G (pixel shuffle), strided-conv D, MSE + feature content loss "
        "+ 1e-3 x adversarial; 7x7 -> 28x28 (x4)",
        {"data": {"name": "fmnist-sr4"},
         "model": {"arch": "srgan", "z_dim": 0, "init": "kaiming"},
         "loss": {"name": "ns", "terms": {"l2": 1.0, "feature": 0.01}, "adv_weight": 1e-3},
         "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.9, 0.999]},
         "train": {"batch_size": 16}, "eval": {"best": ""}},
    ),
    "stargan": (
        "Choi et al. 2018, CPU-sized: one G to any of K domains (target as input planes, 2 residual blocks), "
        "PatchGAN D with a domain head; WGAN-GP (10), domain classification 1, cycle reconstruction 10, "
        "5 D steps, Adam(1e-4; 0.5, 0.999); fmnist-domains",
        {"data": {"name": "fmnist-domains"},
         "model": {"arch": "stargan", "z_dim": 0, "init": "default", "g": {"width": 32, "n_blocks": 2},
                   "d": {"width": 32, "n_layers": 3}},
         "loss": {"name": "wasserstein", "penalties": {"gp": 10.0}, "terms": {"cls": 1.0, "rec": 10.0}},
         "optim": {"name": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.5, 0.999]},
         "train": {"batch_size": 16, "n_critic": 5}, "eval": {"best": ""}},
    ),
    # -- semi-supervised --------------------------------------------------------------------------
    "sgan": (
        "Salimans et al. 2016, semi-supervised, as in the authors' MNIST code: DCGAN G; D an MLP classifier "
        "(1000-500-250-250-250, ReLU, weight normalisation, Gaussian noise 0.3 on the input and 0.5 before every "
        "later layer) with K real-class logits (the K+1-th class, generated, has logit 0); supervised cross-entropy "
        "on 10 labels per class + unsupervised real/fake term, feature matching for G; He init, Adam(1e-3; 0.5, "
        "0.999) (their code: 3e-3); Fashion-MNIST. model.d.arch=conv for a strided-conv D",
        {"data": {"name": "semi:fashion-mnist", "labels_per_class": 10},
         "model": {"arch": "sgan", "init": "kaiming",
                   "d": {"arch": "mlp", "hidden": [1000, 500, 250, 250, 250], "act": "relu", "weight_norm": True,
                         "noise_in": 0.3, "noise": 0.5, "dropout": 0.0}},
         "loss": {"name": "ns", "terms": {"unsup": 1.0, "fm": 1.0}},
         "optim": {"name": "adam", "lr_g": 1e-3, "lr_d": 1e-3, "betas": [0.5, 0.999]},
         "train": {"batch_size": 64}, "eval": {"metrics": "test_acc,linear_probe", "best": ""}},
    ),
    # -- time series ------------------------------------------------------------------------------
    "seqgan": (
        "a recurrent GAN on time series (RCGAN-style, Esteban et al. 2017) with TimeGAN's GRU sizes (3 layers of "
        "24), bidirectional D, non-saturating loss, Adam 1e-3; TimeGAN's sines; scored by its two scores",
        {"data": {"name": "sines"},
         "model": {"arch": "sequence", "z_dim": 16, "init": "default",
                   "g": {"arch": "rnn", "cell": "gru", "hidden": 24, "layers": 3},
                   "d": {"arch": "rnn", "cell": "gru", "hidden": 24, "layers": 3}},
         "loss": {"name": "ns"}, "optim": {"name": "adam", "lr_g": 1e-3, "lr_d": 1e-3, "betas": [0.9, 0.999]},
         "train": {"batch_size": 128},
         "eval": {"metrics": "disc_score,pred_score", "best": "discriminative_score", "n": 2000}},
    ),
    "seqgan-conv": (
        "a convolutional GAN on time series: residual 1-D convs (kernel 5) over a learned position embedding in "
        "G and D, hinge loss, Adam(2e-4; 0.5, 0.999); TimeGAN's sines",
        {"data": {"name": "sines"},
         "model": {"arch": "sequence", "z_dim": 16, "init": "default",
                   "g": {"arch": "conv", "hidden": 32, "layers": 2, "kernel": 5},
                   "d": {"arch": "conv", "hidden": 32, "layers": 2, "kernel": 5}},
         "loss": {"name": "hinge"}, "optim": {"name": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]},
         "train": {"batch_size": 64},
         "eval": {"metrics": "disc_score,pred_score", "best": "discriminative_score", "n": 2000}},
    ),
}

DEFAULT_PRESET = "dcgan"


def preset_config(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'{did_you_mean(name, PRESETS)}; "
                          f"choose from: {', '.join(PRESETS)}")
    cfg = Config.from_dict(copy.deepcopy(PRESETS[name][1]))
    cfg.preset = name
    return cfg
