"""DCGAN (Radford et al. 2015): strided transposed convs in G, strided convs in D, no pooling,
batch norm, ReLU in G (tanh output), LeakyReLU(0.2) in D.

Image sizes are base * 2^n with base 4 or 7: 28 (7->14->28), 32, 64, 128, ...
The WGAN critics reuse D with ``norm="none"`` or ``"ln"`` (no batch norm in a penalised critic)
and no sigmoid (D returns raw scores; the loss decides what they mean).
"""

from __future__ import annotations

from torch import Tensor, nn

from .layers import activation, maybe_sn, norm2d


def _plan(size: int) -> tuple[int, int]:
    """(base, number of x2 upsamplings) for an image size."""
    for base in (4, 7):
        n, s = 0, size
        while s > base and s % 2 == 0:
            s //= 2
            n += 1
        if s == base and n >= 1:
            return base, n
    raise ValueError(f"DCGAN supports image sizes 4*2^n or 7*2^n (28, 32, 64, ...), got {size}")


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int = 100, out_shape: tuple = (1, 28, 28),
                 width: int = 64,  # channels before the last layer (ngf); doubles per lower stage
                 norm: str = "bn",
                 act: str = "relu"):
        super().__init__()
        c_out, h, w = out_shape
        if h != w:
            raise ValueError(f"DCGAN needs square images, got {h}x{w}")
        base, n = _plan(h)
        self.z_dim, self.out_shape = z_dim, tuple(out_shape)
        ch = width * 2 ** (n - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, ch, base, 1, 0, bias=False),  # (B, ch, base, base)
            norm2d(norm, ch), activation(act)]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), norm2d(norm, ch // 2),
                       activation(act)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, c_out, 4, 2, 1), nn.Tanh()]  # (B, C, H, W) in [-1, 1]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(z.view(z.shape[0], self.z_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple = (1, 28, 28),
                 width: int = 64,  # channels of the first conv (ndf); doubles per stage
                 norm: str = "bn",  # bn | ln | in | none  (none/ln for WGAN-GP critics)
                 act: str = "lrelu0.2",
                 dropout: float = 0.0,
                 sn: bool = False):  # spectral normalisation on every conv
        super().__init__()
        c_in, h, w = in_shape
        base, n = _plan(h)
        self.in_shape = tuple(in_shape)
        ch = width
        layers: list[nn.Module] = [maybe_sn(nn.Conv2d(c_in, ch, 4, 2, 1), sn), activation(act)]
        for _ in range(n - 1):
            layers += [maybe_sn(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm == "none"), sn),
                       norm2d(norm, ch * 2), activation(act)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            ch *= 2
        layers.append(maybe_sn(nn.Conv2d(ch, 1, base, 1, 0), sn))  # (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(x).view(-1)  # (B,) raw scores / logits
