"""Network families, weight initialisations and latent distributions.

A family pairs a generator and a discriminator class. Their constructor arguments are the
config schema: ``model.g`` / ``model.d`` hold extra keyword arguments, checked against the
constructor signatures before training starts, and the full argument set is saved with the
weights so a run can be rebuilt without guessing.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..config import image_hw
from ..errors import ConfigError
from ..registry import Registry, did_you_mean
from .biggan import BigGANDiscriminator, BigGANGenerator
from .cyclegan import CycleDiscriminator, CycleGenerator
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .mlp import MLPDiscriminator, MLPGenerator
from .pix2pix import PatchDiscriminator, UNetGenerator
from .resnet import ResNetDiscriminator, ResNetGenerator
from .sagan import SAGANDiscriminator, SAGANGenerator
from .sequence import SequenceDiscriminator, SequenceGenerator
from .ssl import SSLDiscriminator
from .stargan import StarDiscriminator, StarGenerator
from .srgan import SRGANDiscriminator, SRResNetGenerator
from .stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator


# Constructor arguments set from the data and the model config, never by model.g / model.d:
#   z_dim: latent size; out_shape / in_shape: per-sample shape of the images G makes / D judges;
#   num_classes: label count (only when model.conditional=true); cond_shape: shape of the input
#   image for image-to-image data (paired / unpaired kinds).
G_RESERVED = ("z_dim", "out_shape", "num_classes", "cond_shape")
D_RESERVED = ("in_shape", "num_classes", "cond_shape")


def _accepts(cls: type, name: str) -> bool:
    return name in inspect.signature(cls.__init__).parameters


@dataclass(frozen=True)
class NetFamily:
    generator: type  # called as generator(z_dim=..., out_shape=..., **model.g)
    discriminator: type  # called as discriminator(in_shape=..., **model.d)
    task: str = "generate"  # the task it serves (a key of ganforge.tasks.TASKS)
    images_only: bool = False  # needs (C, H, W) images; otherwise also vectors (toy data)
    any_shape: bool = False  # takes non-square images (data.image_size=HxW)
    class_nets: str = ""  # the nets that always get the data's class count: "d" (a classifier D), "gd" (domains)

    @property
    def conditional(self) -> bool:
        """Whether its nets take class labels (a ``num_classes`` constructor argument); a family
        whose nets always take the classes (``class_nets``: a classifier D, StarGAN's domains) is not
        class-conditional in the ``model.conditional`` sense."""
        return (not self.class_nets and _accepts(self.generator, "num_classes")
                and _accepts(self.discriminator, "num_classes"))

    def check_kwargs(self, g: dict, d: dict) -> None:
        for key, cls, kw, reserved in (("model.g", self.generator, g, G_RESERVED),
                                       ("model.d", self.discriminator, d, D_RESERVED)):
            params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
            for name in kw:
                if name in reserved:
                    raise ConfigError(f"{key}.{name} is set by the data and model.z_dim, not by hand")
                if name not in params:
                    raise ConfigError(f"unknown argument '{key}.{name}'{did_you_mean(name, params)} for "
                                      f"{cls.__name__}; valid: {', '.join(p for p in params if p not in reserved)}")


NETS = Registry("network family", check=lambda o: isinstance(o, NetFamily))
NETS.register("mlp", help="MLP G and D (Goodfellow et al. 2014), vectors or flattened images")(
    NetFamily(MLPGenerator, MLPDiscriminator, any_shape=True))
NETS.register("dcgan", help="DCGAN conv nets (Radford et al. 2015) for 28/32/64 px images")(
    NetFamily(DCGANGenerator, DCGANDiscriminator, images_only=True, any_shape=True))
NETS.register("resnet", help="SNGAN ResNet G/D (Miyato et al. 2018), spectral norm, projection D when conditional")(
    NetFamily(ResNetGenerator, ResNetDiscriminator, images_only=True))
NETS.register("biggan", help="BigGAN-style ResNet G/D (Brock et al. 2019): hierarchical z, shared class embedding, "
                             "self-attention, spectral norm in G and D")(
    NetFamily(BigGANGenerator, BigGANDiscriminator, images_only=True))
NETS.register("pix2pix", help="pix2pix U-Net G + conditional PatchGAN D (Isola et al. 2017), paired images")(
    NetFamily(UNetGenerator, PatchDiscriminator, task="paired", images_only=True))
NETS.register("cyclegan", help="CycleGAN ResNet Gs + PatchGAN Ds, A<->B (Zhu et al. 2017), unpaired images")(
    NetFamily(CycleGenerator, CycleDiscriminator, task="unpaired", images_only=True))
NETS.register("srgan", help="SRGAN SRResNet G + strided-conv D (Ledig et al. 2017), x2/x4 super-resolution")(
    NetFamily(SRResNetGenerator, SRGANDiscriminator, task="paired", images_only=True))
NETS.register("stylegan2", help="StyleGAN2 (Karras et al. 2020): mapping net, modulated convs, noise, skip/resnet G, "
                               "residual D with minibatch std, projection D when conditional")(
    NetFamily(StyleGAN2Generator, StyleGAN2Discriminator, images_only=True))
NETS.register("sagan", help="SAGAN (Zhang et al. 2019): ResNet G/D with self-attention, spectral norm in both, "
                           "conditional BN G and projection D when conditional")(
    NetFamily(SAGANGenerator, SAGANDiscriminator, images_only=True))
NETS.register("sgan", help="semi-supervised GAN (Salimans et al. 2016): DCGAN G, a K-class classifier D "
                          "(the K+1-th class, generated, has logit 0), features for feature matching")(
    NetFamily(DCGANGenerator, SSLDiscriminator, task="semi", images_only=True, class_nets="d"))
NETS.register("stargan", help="StarGAN (Choi et al. 2018): one G translating an image to any of K domains (the "
                             "target as K input planes), PatchGAN D with a domain-classification head")(
    NetFamily(StarGenerator, StarDiscriminator, task="multidomain", images_only=True, class_nets="gd"))
NETS.register("sequence", help="sequence G/D for time series (B, T, F): stacked GRU/LSTM, residual 1-D convs or a "
                              "Transformer encoder (model.g.arch / model.d.arch), variable lengths")(
    NetFamily(SequenceGenerator, SequenceDiscriminator, task="sequence"))


def _tuples(args: dict) -> dict:
    return {k: tuple(v) if k in ("out_shape", "in_shape", "cond_shape") and v is not None else v
            for k, v in args.items()}


def validate_config(cfg) -> NetFamily:
    """Check the model section's registry names and the nets' extra arguments."""
    NETS.check("model.arch", cfg.model.arch)
    INITS.check("model.init", cfg.model.init)
    fam = NETS.get(cfg.model.arch)
    fam.check_kwargs(cfg.model.g, cfg.model.d)
    if cfg.model.conditional and not fam.conditional:
        raise ConfigError(f"model.arch '{cfg.model.arch}' has no class-conditional nets; conditional "
                          f"families: {', '.join(n for n, f in NETS.items() if f.conditional)}")
    h, w = image_hw(cfg.data.image_size)
    if h != w and not fam.any_shape:
        raise ConfigError(f"model.arch '{cfg.model.arch}' needs square images, but data.image_size={cfg.data.image_size}; "
                          f"families that take HxW images: {', '.join(n for n, f in NETS.items() if f.any_shape)}")
    if h != w:  # the family's own size rules (DCGAN: 32x64 yes, 48x64 no), on the meta device: no memory
        try:
            with torch.device("meta"):
                fam.generator(z_dim=cfg.model.z_dim, out_shape=(3, h, w), **cfg.model.g)
        except ValueError as e:
            raise ConfigError(f"data.image_size={cfg.data.image_size}: {e}") from None
    return fam


def build_nets(model_cfg, data_shape: tuple, num_classes: int = 0, cond_shape: tuple | None = None):
    """Build (G, D) for data of per-sample shape ``data_shape``, and their constructor args.

    ``num_classes`` reaches the nets only when ``model.conditional`` is set; ``cond_shape`` (the
    input image of image-to-image data) whenever the data has one.
    """
    fam = NETS.get(model_cfg.arch)
    if fam.images_only and len(data_shape) != 3:
        raise ConfigError(f"model.arch '{model_cfg.arch}' needs image data (C, H, W), but the dataset gives "
                          f"samples of shape {tuple(data_shape)}; try model.arch=mlp")
    fam.check_kwargs(model_cfg.g, model_cfg.d)
    g_args = {"z_dim": model_cfg.z_dim, "out_shape": list(data_shape)}
    d_args = {"in_shape": list(data_shape)}
    if getattr(model_cfg, "conditional", False):
        if not fam.conditional:
            raise ConfigError(f"model.arch '{model_cfg.arch}' has no class-conditional nets; "
                              f"conditional families: {', '.join(n for n in NETS.keys() if NETS.get(n).conditional)}")
        if num_classes < 2:
            raise ConfigError("model.conditional=true needs a labelled dataset (fashion-mnist, mnist, cifar10, "
                              "stacked-fmnist)")
        g_args["num_classes"] = d_args["num_classes"] = int(num_classes)
    if fam.class_nets:
        if num_classes < 2:
            raise ConfigError(f"model.arch '{model_cfg.arch}' needs labelled data (classes or domains), "
                              f"got {num_classes} classes")
        for which, args in (("g", g_args), ("d", d_args)):
            if which in fam.class_nets:
                args["num_classes"] = int(num_classes)
    if cond_shape is not None:
        for cls, args in ((fam.generator, g_args), (fam.discriminator, d_args)):
            if _accepts(cls, "cond_shape"):
                args["cond_shape"] = list(cond_shape)
    g_args.update(model_cfg.g)
    d_args.update(model_cfg.d)
    try:
        G = fam.generator(**_tuples(g_args))
        D = fam.discriminator(**_tuples(d_args))
    except (ValueError, TypeError) as e:
        raise ConfigError(f"cannot build {model_cfg.arch} nets for data of shape {tuple(data_shape)}: {e}") from None
    init_weights_(G, model_cfg.init, model_cfg.init_gain)
    init_weights_(D, model_cfg.init, model_cfg.init_gain)
    return G, D, g_args, d_args


def rebuild(model_cfg, args: dict, which: str) -> nn.Module:
    """Rebuild G (``which="g"``) or D from saved constructor args (weights loaded separately)."""
    fam = NETS.get(model_cfg.arch)
    cls = fam.generator if which == "g" else fam.discriminator
    return cls(**_tuples(args))


# -- initialisation --------------------------------------------------------------------------

INITS = Registry("initialisation", check=callable)


def _weights(module: nn.Module):
    """(layer, weight tensor) for conv / linear layers, looking through parametrizations (for
    weight normalisation, the direction v; :func:`_init` then sets the gain g to ``||v||``)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            if parametrize.is_parametrized(m, "weight"):
                p = m.parametrizations.weight
                yield m, p.original if hasattr(p, "original") else p.original1
            else:
                yield m, m.weight


def _match_weight_norm_gain_(m: nn.Module) -> None:
    """Weight normalisation (w = g v / ||v||): set g = ||v|| so w equals the freshly drawn v."""
    p = m.parametrizations.weight if parametrize.is_parametrized(m, "weight") else None
    if p is not None and hasattr(p, "original0") and hasattr(p, "original1"):
        v = p.original1
        p.original0.copy_(torch.linalg.vector_norm(v, dim=tuple(range(1, v.dim())), keepdim=True))


def _norm_layers(module: nn.Module):
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)) \
                and getattr(m, "weight", None) is not None:
            yield m


def _init(weight_fn, norm_std: float = 0.0):
    @torch.no_grad()
    def apply(module: nn.Module, gain: float) -> None:
        for m, w in _weights(module):
            weight_fn(w, gain)
            _match_weight_norm_gain_(m)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        for m in _norm_layers(module):
            if norm_std > 0:
                nn.init.normal_(m.weight, 1.0, norm_std)
            else:
                nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return apply


INITS.register("normal", help="N(0, gain^2) weights (DCGAN: gain 0.02), BN scale N(1, 0.02)")(
    _init(lambda w, g: nn.init.normal_(w, 0.0, g), norm_std=0.02))
INITS.register("uniform", help="U(-gain, gain) weights")(_init(lambda w, g: nn.init.uniform_(w, -g, g)))
INITS.register("xavier", help="Glorot/Xavier uniform with the given gain")(
    _init(lambda w, g: nn.init.xavier_uniform_(w, gain=g)))
INITS.register("kaiming", help="He/Kaiming normal (fan_in, LeakyReLU 0.2)")(
    _init(lambda w, g: nn.init.kaiming_normal_(w, a=0.2, nonlinearity="leaky_relu")))
INITS.register("he", help="alias of kaiming")(
    _init(lambda w, g: nn.init.kaiming_normal_(w, a=0.2, nonlinearity="leaky_relu")))
INITS.register("orthogonal", help="orthogonal weights with the given gain")(
    _init(lambda w, g: nn.init.orthogonal_(w, gain=g)))
INITS.register("default", help="PyTorch's own layer defaults")(lambda module, gain: None)


def init_weights_(module: nn.Module, name: str, gain: float) -> None:
    INITS.get(name)(module, gain)


# -- latent distributions --------------------------------------------------------------------

from ..config.ranges import LATENTS  # noqa: E402  (the latent distributions the schema accepts)


def sample_latent(kind: str, n: int, z_dim: int, *, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu", truncation: float | None = None) -> Tensor:
    """z of shape (n, z_dim): standard normal, or uniform on [-1, 1].

    ``truncation`` (normal latents only) is BigGAN's truncation trick: every coordinate with
    ``|z| > truncation`` is redrawn until it falls inside, i.e. z follows the standard normal
    truncated to [-truncation, truncation]. Smaller values trade variety for fidelity.
    """
    if truncation is not None:
        if kind != "normal":
            raise ValueError("truncation applies to normal latents only")
        if not truncation > 0:
            raise ValueError(f"truncation must be > 0, got {truncation}")
        z = torch.randn(n, z_dim, generator=generator, device=device)
        for _ in range(1000):
            bad = z.abs() > truncation
            if not bad.any():
                return z
            z = torch.where(bad, torch.randn(n, z_dim, generator=generator, device=device), z)
        return z.clamp_(-truncation, truncation)  # only reached for absurdly small thresholds
    if kind == "normal":
        return torch.randn(n, z_dim, generator=generator, device=device)
    if kind == "uniform":
        return torch.rand(n, z_dim, generator=generator, device=device).mul_(2).sub_(1)
    raise ValueError(f"unknown latent '{kind}'{did_you_mean(kind, LATENTS)}")


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["NETS", "INITS", "LATENTS", "NetFamily", "build_nets", "rebuild", "init_weights_", "validate_config",
           "sample_latent", "count_params"]
