"""Augmentations of D's inputs: DiffAugment, ADA-style adaptive probability, instance noise.

Three layers, from pure to stateful:

1. Pure, deterministic image ops with explicit per-sample parameters (``brightness``,
   ``saturation``, ``contrast``, ``translate``, ``cutout``). Images are (B, C, H, W) in [-1, 1];
   every op is built from broadcasting, ``gather`` and masks (no Python loop over images) and is
   differentiable w.r.t. its input, so gradients reach G through an augmented fake batch.
2. Randomised augmentations registered by name in :data:`AUGMENTATIONS` with the signature
   ``fn(x, *, generator) -> Tensor``; they draw O(B) numbers from ``generator`` and call the pure
   ops. :func:`diff_augment` applies a comma-separated policy, each named augmentation to each
   sample independently with probability ``p``.
3. :class:`AdaptiveP` (ADA's p controller) and :class:`Augment`, the one object the objective
   holds: it augments every D input, adds annealed instance noise, observes D's real logits and
   is fully checkpointable.

DiffAugment (Zhao et al. 2020) operates on the [-1, 1] images directly, with the constants of
its reference implementation: brightness adds U[-0.5, 0.5); saturation scales the deviation from
the per-pixel channel mean by U[0, 2); contrast scales the deviation from the per-image mean by
U[0.5, 1.5); translation shifts by an integer in [-round(H/8), round(H/8)] (rows) and likewise
for columns, filling uncovered pixels with 0 (mid-grey); cutout sets a round(H/2) x round(W/2)
rectangle to 0 (mid-grey). Outputs are not clamped, as in the paper.

Random draws: each call consumes the same number of draws whatever ``p`` and the data are, so a
run is reproducible from the generator state. Draws are made on the generator's device and moved
to the input's device (O(B) numbers, except instance noise which is one number per input value:
on a GPU pass a generator on that GPU).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .registry import Registry, did_you_mean

AUGMENTATIONS = Registry("augmentation", check=callable)

TRANSLATION_RATIO = 0.125  # max shift, as a fraction of the image size
CUTOUT_RATIO = 0.5  # side of the cut-out rectangle, as a fraction of the image size


# ---------------------------------------------------------------------------------------------
# random draws (on the generator's device, moved to the data's device)
# ---------------------------------------------------------------------------------------------

def _gen_device(generator: torch.Generator | None, x: Tensor) -> torch.device:
    return generator.device if generator is not None else x.device


def _uniform(n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """(n,) draws from U[0, 1) in x's dtype on x's device."""
    u = torch.rand(n, generator=generator, device=_gen_device(generator, x))
    return u.to(x.device, x.dtype)


def _randint(low: int, high: int, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """(n,) integers uniform in [low, high) on x's device."""
    i = torch.randint(low, high, (n,), generator=generator, device=_gen_device(generator, x))
    return i.to(x.device)


def _check_images(x: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"image augmentations expect (B, C, H, W) tensors, got shape {tuple(x.shape)}")


def _per_sample(v: Tensor, x: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1, 1) in x's dtype/device."""
    return torch.as_tensor(v, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)


# ---------------------------------------------------------------------------------------------
# pure ops with explicit per-sample parameters
# ---------------------------------------------------------------------------------------------

def brightness(x: Tensor, delta: Tensor) -> Tensor:
    """x + delta[b]; ``delta`` (B,)."""
    return x + _per_sample(delta, x)


def saturation(x: Tensor, scale: Tensor) -> Tensor:
    """(x - m) * scale[b] + m, with m the per-pixel mean over channels (B, 1, H, W)."""
    m = x.mean(dim=1, keepdim=True)
    return (x - m) * _per_sample(scale, x) + m


def contrast(x: Tensor, scale: Tensor) -> Tensor:
    """(x - m) * scale[b] + m, with m the per-image mean over (C, H, W) (B, 1, 1, 1)."""
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * _per_sample(scale, x) + m


def translate(x: Tensor, dy: Tensor, dx: Tensor, fill: float = 0.0) -> Tensor:
    """Shift sample b by dy[b] rows (positive = down) and dx[b] columns (positive = right).

    out[b, c, i, j] = x[b, c, i - dy[b], j - dx[b]] where that is inside the image, else ``fill``
    (0 by default: mid-grey for [-1, 1] images, as in DiffAugment). ``dy``, ``dx``: (B,) integers.
    """
    _check_images(x)
    B, C, H, W = x.shape
    dy = torch.as_tensor(dy, device=x.device).long().reshape(B, 1)
    dx = torch.as_tensor(dx, device=x.device).long().reshape(B, 1)
    src_y = torch.arange(H, device=x.device).reshape(1, H) - dy  # (B, H)
    src_x = torch.arange(W, device=x.device).reshape(1, W) - dx  # (B, W)
    ok_y = (src_y >= 0) & (src_y < H)
    ok_x = (src_x >= 0) & (src_x < W)
    rows = src_y.clamp(0, H - 1).reshape(B, 1, H, 1).expand(B, C, H, W)
    cols = src_x.clamp(0, W - 1).reshape(B, 1, 1, W).expand(B, C, H, W)
    out = x.gather(2, rows).gather(3, cols)  # (B, C, H, W)
    inside = (ok_y.reshape(B, 1, H, 1) & ok_x.reshape(B, 1, 1, W)).to(x.dtype)  # (B, 1, H, W)
    out = out * inside
    if fill != 0.0:
        out = out + fill * (1.0 - inside)
    return out


def cutout_mask(shape, top: Tensor, left: Tensor, size: tuple[int, int], device=None) -> Tensor:
    """Boolean (B, 1, H, W) mask, True inside rows [top, top + sh) x cols [left, left + sw)
    (clipped to the image)."""
    B, _, H, W = shape
    sh, sw = size
    top = torch.as_tensor(top, device=device).long().reshape(B, 1)
    left = torch.as_tensor(left, device=device).long().reshape(B, 1)
    r = torch.arange(H, device=device).reshape(1, H)
    c = torch.arange(W, device=device).reshape(1, W)
    in_y = (r >= top) & (r < top + sh)  # (B, H)
    in_x = (c >= left) & (c < left + sw)  # (B, W)
    return in_y.reshape(B, 1, H, 1) & in_x.reshape(B, 1, 1, W)


def cutout(x: Tensor, top: Tensor, left: Tensor, size: tuple[int, int]) -> Tensor:
    """Set rows [top[b], top[b] + sh) x cols [left[b], left[b] + sw) of every channel of sample b
    to 0 (clipped at the borders; ``top``/``left`` may be negative)."""
    _check_images(x)
    mask = cutout_mask(x.shape, top, left, size, device=x.device)
    return x * (~mask).to(x.dtype)


# ---------------------------------------------------------------------------------------------
# randomised augmentations, registered by policy name: fn(x, *, generator) -> Tensor
# ---------------------------------------------------------------------------------------------

@AUGMENTATIONS.register("brightness")
def rand_brightness(x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Add U[-0.5, 0.5) per sample (1 draw per sample)."""
    _check_images(x)
    return brightness(x, _uniform(x.shape[0], x, generator) - 0.5)


@AUGMENTATIONS.register("saturation")
def rand_saturation(x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Scale the deviation from the channel mean by U[0, 2) per sample (1 draw per sample)."""
    _check_images(x)
    return saturation(x, 2.0 * _uniform(x.shape[0], x, generator))


@AUGMENTATIONS.register("contrast")
def rand_contrast(x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Scale the deviation from the image mean by U[0.5, 1.5) per sample (1 draw per sample)."""
    _check_images(x)
    return contrast(x, _uniform(x.shape[0], x, generator) + 0.5)


@AUGMENTATIONS.register("color")
def rand_color(x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """DiffAugment 'color': brightness, then saturation, then contrast (3 draws per sample, in
    that order: (B,) for brightness, (B,) for saturation, (B,) for contrast)."""
    x = rand_brightness(x, generator=generator)
    x = rand_saturation(x, generator=generator)
    return rand_contrast(x, generator=generator)


def max_shift(size: int) -> int:
    """The largest translation in pixels for an image side of ``size``: round(size / 8)."""
    return int(size * TRANSLATION_RATIO + 0.5)


@AUGMENTATIONS.register("translation")
def rand_translation(x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """DiffAugment 'translation': integer shifts dy, dx uniform in [-round(H/8), round(H/8)] (resp.
    W), per sample, zero fill (draws: (B,) dy, then (B,) dx)."""
    _check_images(x)
    B, _, H, W = x.shape
    sy, sx = max_shift(H), max_shift(W)
    dy = _randint(-sy, sy + 1, B, x, generator)
    dx = _randint(-sx, sx + 1, B, x, generator)
    return translate(x, dy, dx)


def cutout_size(h: int, w: int) -> tuple[int, int]:
    """The side lengths of the cut-out rectangle: (round(H/2), round(W/2))."""
    return int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)


@AUGMENTATIONS.register("cutout")
def rand_cutout(x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """DiffAugment 'cutout': zero a round(H/2) x round(W/2) rectangle per sample. Its top row is
    uniform in [-(sh // 2), H - sh + sh // 2] (likewise columns), so it can hang over each border
    by up to half its side, symmetrically; the part outside the image is clipped
    (draws: (B,) top, then (B,) left)."""
    _check_images(x)
    B, _, H, W = x.shape
    sh, sw = cutout_size(H, W)
    top = _randint(-(sh // 2), H - sh + sh // 2 + 1, B, x, generator)
    left = _randint(-(sw // 2), W - sw + sw // 2 + 1, B, x, generator)
    return cutout(x, top, left, (sh, sw))


def parse_policy(policy: str) -> list[str]:
    """"color, translation,cutout" -> ["color", "translation", "cutout"]; "" -> []. Unknown names
    raise ValueError with a did-you-mean."""
    if not isinstance(policy, str):
        raise ValueError(f"augmentation policy must be a comma-separated string, got {policy!r}")
    names = [n.strip() for n in policy.split(",") if n.strip()]
    for n in names:
        if n not in AUGMENTATIONS:
            raise ValueError(
                f"unknown augmentation '{n}' in policy {policy!r}{did_you_mean(n, AUGMENTATIONS.keys())}; "
                f"choose from: {', '.join(AUGMENTATIONS.keys())}")
    if len(set(names)) != len(names):
        raise ValueError(f"augmentation policy {policy!r} names an augmentation twice")
    return names


def diff_augment(x: Tensor, policy: str | list[str], *, p: float = 1.0,
                 generator: torch.Generator | None = None) -> Tensor:
    """Apply each augmentation of ``policy`` in order; each is applied to each sample
    independently with probability ``p`` (samples not selected pass through unchanged).

    Per augmentation the draws are: (B,) gate uniforms (sample selected iff u < p), then the
    augmentation's own draws. They are made whatever ``p`` is, so the generator advances by the
    same amount on every call. ``p = 1`` is plain DiffAugment, ``p = 0`` the identity.
    """
    names = parse_policy(policy) if isinstance(policy, str) else list(policy)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"augmentation probability p must be in [0, 1], got {p}")
    if not names:
        return x
    _check_images(x)
    B = x.shape[0]
    for name in names:
        u = torch.rand(B, generator=generator, device=_gen_device(generator, x))  # float32
        gate = (u < p).to(x.device)  # (B,)
        aug = AUGMENTATIONS.get(name)(x, generator=generator)
        if p >= 1.0:
            x = aug
        elif p > 0.0:
            x = torch.where(gate.reshape(B, 1, 1, 1), aug, x)
    return x


# ---------------------------------------------------------------------------------------------
# instance noise
# ---------------------------------------------------------------------------------------------

def noise_sigma(sigma0: float, step: int, steps: int) -> float:
    """Linear annealing sigma0 * max(0, 1 - step / steps); ``steps = 0`` keeps sigma0 constant."""
    if steps <= 0:
        return float(sigma0)
    return float(sigma0) * max(0.0, 1.0 - step / steps)


def instance_noise(x: Tensor, sigma: float, *, generator: torch.Generator | None = None) -> Tensor:
    """x + N(0, sigma^2) per element (Sønderby et al. 2016; Arjovsky & Bottou 2017)."""
    if sigma <= 0:
        return x
    n = torch.randn(x.shape, generator=generator, device=_gen_device(generator, x))
    return x + sigma * n.to(x.device, x.dtype)


# ---------------------------------------------------------------------------------------------
# ADA's adaptive probability
# ---------------------------------------------------------------------------------------------

class AdaptiveP:
    """ADA's p controller (Karras et al. 2020, "Training GANs with limited data").

    Call :meth:`observe` with D's real logits after every D step. Every ``interval`` calls it
    sets r_t = mean(sign(D(real))) over the logits seen since the last update and moves
    p <- clamp(p + sign(r_t - target) * batch_size * interval / (speed_kimg * 1000), 0, 1),
    i.e. p can go from 0 to 1 in ``speed_kimg`` thousand real images. ``speed_kimg`` may be
    fractional (e.g. 0.5 for a CPU-sized run).

    The sign sum is accumulated in a tensor on the logits' device; it is read (one host sync)
    only at updates.
    """

    def __init__(self, target: float = 0.6, interval: int = 4, speed_kimg: float = 500.0,
                 batch_size: int = 64, p: float = 0.0):
        if not 0.0 < target < 1.0:
            raise ValueError(f"ADA target must be in (0, 1), got {target}")
        if int(interval) != interval or interval < 1:
            raise ValueError(f"ADA interval must be a positive integer number of D steps, got {interval}")
        if not speed_kimg > 0:
            raise ValueError(f"ADA speed_kimg (thousands of images for p to go 0 -> 1) must be > 0, got {speed_kimg}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"ADA batch_size must be a positive integer, got {batch_size}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"ADA initial p must be in [0, 1], got {p}")
        self.target = float(target)
        self.interval = int(interval)
        self.speed_kimg = float(speed_kimg)
        self.batch_size = int(batch_size)
        self.p = float(p)
        self.rt: float | None = None  # the last r_t (None before the first update)
        self._sum: Tensor | float = 0.0  # sum of sign(real logits) since the last update
        self._count = 0  # number of logits summed
        self._calls = 0  # observe() calls since the last update

    @property
    def step_size(self) -> float:
        """|change of p| per update: batch_size * interval / (speed_kimg * 1000)."""
        return self.batch_size * self.interval / (self.speed_kimg * 1000.0)

    def observe(self, real_logits: Tensor) -> None:
        real_logits = real_logits.detach()
        self._sum = self._sum + torch.sign(real_logits).sum()
        self._count += real_logits.numel()
        self._calls += 1
        if self._calls >= self.interval:
            self._update()

    def _update(self) -> None:
        if self._count > 0:
            rt = float(self._sum) / self._count
            self.rt = rt
            direction = (rt > self.target) - (rt < self.target)  # sign(r_t - target)
            self.p = min(1.0, max(0.0, self.p + direction * self.step_size))
        self._sum, self._count, self._calls = 0.0, 0, 0

    def state_dict(self) -> dict:
        return {"p": self.p, "rt": self.rt, "sum": float(self._sum), "count": self._count,
                "calls": self._calls}

    def load_state_dict(self, state: dict) -> None:
        missing = {"p", "rt", "sum", "count", "calls"} - set(state)
        if missing:
            raise ValueError(f"AdaptiveP state is missing {sorted(missing)}")
        self.p = float(state["p"])
        self.rt = None if state["rt"] is None else float(state["rt"])
        self._sum = float(state["sum"])
        self._count = int(state["count"])
        self._calls = int(state["calls"])


# ---------------------------------------------------------------------------------------------
# the object the objective holds
# ---------------------------------------------------------------------------------------------

class Augment:
    """Everything that happens to a batch between the data/G and D.

    ``aug(x, step)`` applies the DiffAugment ``policy`` (each augmentation to each sample with
    probability :attr:`p`) and then instance noise of std ``noise * max(0, 1 - step/noise_steps)``
    (constant ``noise`` if ``noise_steps == 0``). Call it on EVERY D input, reals and fakes, in
    the D phase and in the G phase (without ``no_grad`` on fakes, so G gets gradients). Each call
    makes fresh draws: the real and fake batches get the same kinds of transforms with
    independent random parameters, as in DiffAugment. Do not reuse one call's output for both.

    ``p``: the fixed probability, or the initial one with ADA; ``None`` means 1.0 for a fixed p
    and 0.0 with ADA (as in StyleGAN2-ADA). ``ada_target > 0`` turns on :class:`AdaptiveP`:
    call :meth:`observe` with D's real logits (of the augmented reals) after each D step.

    ``generator``: the source of all random draws. If None, the object owns a CPU generator
    seeded with ``seed`` and its state is part of :meth:`state_dict`; otherwise the caller owns
    (and checkpoints) it.
    """

    def __init__(self, policy: str = "", p: float | None = None, ada_target: float = 0.0,
                 ada_interval: int = 4, ada_kimg: float = 500.0, noise: float = 0.0,
                 noise_steps: int = 0, batch_size: int = 64,
                 generator: torch.Generator | None = None, seed: int = 0):
        self.policy = policy
        self.names = parse_policy(policy)
        if not ada_target >= 0.0 or ada_target >= 1.0:
            raise ValueError(f"ada_target must be in [0, 1) (0 = fixed p), got {ada_target}")
        if ada_target > 0 and not self.names:
            raise ValueError("ada_target > 0 needs an augmentation policy (e.g. 'color,translation,cutout')")
        if p is None:
            p = 0.0 if ada_target > 0 else 1.0
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"augmentation probability p must be in [0, 1], got {p}")
        if not noise >= 0.0:
            raise ValueError(f"instance noise std must be >= 0, got {noise}")
        if int(noise_steps) != noise_steps or noise_steps < 0:
            raise ValueError(f"noise_steps must be an integer >= 0 (0 = no annealing), got {noise_steps}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.ada = (AdaptiveP(ada_target, ada_interval, ada_kimg, batch_size, p=p)
                    if ada_target > 0 else None)
        self._p = float(p)
        self.noise = float(noise)
        self.noise_steps = int(noise_steps)
        self.owns_generator = generator is None
        self.generator = generator if generator is not None else torch.Generator().manual_seed(seed)
        self._sigma = self.noise  # the last sigma used (for stats)

    # -- properties -------------------------------------------------------------------------
    @property
    def p(self) -> float:
        return self.ada.p if self.ada is not None else self._p

    @property
    def enabled(self) -> bool:
        """True if a call can change its input (augmentations that can fire, or noise)."""
        return bool(self.names) and (self.ada is not None or self._p > 0) or self.noise > 0

    def sigma(self, step: int) -> float:
        return noise_sigma(self.noise, step, self.noise_steps)

    # -- the work -----------------------------------------------------------------------------
    def __call__(self, x: Tensor, step: int) -> Tensor:
        """Augment one batch (B, C, H, W) (or any shape if only instance noise is on)."""
        if self.names:
            x = diff_augment(x, self.names, p=self.p, generator=self.generator)
        if self.noise > 0:
            self._sigma = self.sigma(step)
            x = instance_noise(x, self._sigma, generator=self.generator)
        return x

    def observe(self, real_logits: Tensor) -> None:
        """Feed D's real logits after a D step (a no-op unless ADA is on)."""
        if self.ada is not None:
            self.ada.observe(real_logits)

    def stats(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        if self.names:
            out["aug/p"] = torch.tensor(self.p)
        if self.ada is not None and self.ada.rt is not None:
            out["aug/rt"] = torch.tensor(self.ada.rt)
        if self.noise > 0:
            out["aug/sigma"] = torch.tensor(self._sigma)
        return out

    # -- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state: dict = {"p": self._p, "ada": self.ada.state_dict() if self.ada is not None else None,
                       "sigma": self._sigma}
        if self.owns_generator:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        if (state.get("ada") is None) != (self.ada is None):
            raise ValueError("augmentation state does not match this Augment (ADA on in one, off in the other)")
        if self.owns_generator and "generator" not in state:
            raise ValueError("augmentation state has no generator state but this Augment owns its generator")
        self._p = float(state["p"])
        self._sigma = float(state.get("sigma", self.noise))
        if self.ada is not None:
            self.ada.load_state_dict(state["ada"])
        if self.owns_generator:
            self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        ada = f", ada_target={self.ada.target}" if self.ada is not None else ""
        return f"Augment(policy={self.policy!r}, p={self.p}{ada}, noise={self.noise}, noise_steps={self.noise_steps})"


def validate_config(cfg) -> None:
    """The augment section's DiffAugment policy names."""
    for part in filter(None, (p.strip() for p in cfg.augment.policy.split(","))):
        AUGMENTATIONS.check("augment.policy", part)
