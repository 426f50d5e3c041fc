"""Objectives: what the training loop's D phase and G phase minimise.

- :class:`~.base.Objective`: the adversarial loss, D penalties, clipping and augmentation shared by all;
- :class:`~.gan.GANObjective`: G(z, y) against D(x, y) (unconditional, class- and image-conditional);
- :class:`~.cycle.CycleObjective`: CycleGAN's two generators and two discriminators;
- :class:`~.ssl.SSLObjective`: semi-supervised GANs (a K-class D, feature matching for G);
- :class:`~.stargan.StarObjective`: StarGAN (one G to K domains, a domain-classifying D);
- :data:`~.terms.TERMS`: G-side loss terms weighted by ``loss.terms``.

Each task (:mod:`ganforge.tasks`) names the objective that trains it.
"""

from .base import Objective
from .cycle import CycleObjective
from .gan import GANObjective
from .ssl import SSLObjective
from .stargan import StarObjective
from .terms import TERMS

__all__ = ["Objective", "GANObjective", "CycleObjective", "SSLObjective", "StarObjective", "TERMS"]
