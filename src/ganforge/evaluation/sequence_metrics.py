"""TimeGAN's scores of time-series models (Yoon et al. 2019): generated sequences against the
reference sequences the model's task provides (:meth:`ganforge.tasks.sequence.SequenceTask.real_sequences`)."""

from __future__ import annotations

from ..errors import EvalError
from ..metrics.timeseries import DISCRIMINATIVE, PREDICTIVE, discriminative_score, predictive_score
from .registry import Metric, register_metric


def _pair(ctx):
    return ctx.task.real_sequences(ctx), ctx.task.generated_sequences(ctx)


@register_metric("disc_score")
class DiscriminativeScore(Metric):
    """TimeGAN's discriminative score: |held-out accuracy - 0.5| of a GRU told to separate real from
    generated sequences (0 = indistinguishable, 0.5 = always told apart)."""
    needs = ("sequences",)

    def compute(self, ctx):
        (real, rl), (fake, fl) = _pair(ctx)
        try:
            return {DISCRIMINATIVE: discriminative_score(real, fake, real_lengths=rl, fake_lengths=fl,
                                                         seed=ctx.seed)}
        except ValueError as e:
            raise EvalError(f"disc_score: {e}") from None


@register_metric("pred_score")
class PredictiveScore(Metric):
    """TimeGAN's predictive score (train on synthetic, test on real): MAE on the reference of a GRU
    next-step predictor trained on generated sequences (lower is better)."""
    needs = ("sequences",)

    def compute(self, ctx):
        (real, rl), (fake, fl) = _pair(ctx)
        try:
            return {PREDICTIVE: predictive_score(fake, real, train_lengths=fl, test_lengths=rl, seed=ctx.seed)}
        except ValueError as e:
            raise EvalError(f"pred_score: {e}") from None
