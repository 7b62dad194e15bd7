r"""Quantile maps: normalization layers that match a whole target distribution.

``GroupMap``, ``LayerMap`` and ``InstanceMap`` are drop-in replacements for
``nn.GroupNorm``, ``nn.LayerNorm`` and ``nn.InstanceNorm*d``. Instead of matching the
mean and variance of each group of activations, they map the group onto a prescribed
distribution by 1-D optimal transport (the increasing rearrangement):

.. math::  y = Q(F(x)) \cdot \gamma + \beta

with :math:`F` the empirical CDF of the group and :math:`Q` the target's quantile
function. This is the formula of the reference implementation (the ``groupmap``
project) with four additions:

* **Gradients reach earlier layers.** The reference output depends on the input only
  through ranks, so autograd sees no path to the input. Here ``grad="transport"``
  (default) back-propagates the derivative of the transport map ``T = Q o F`` with the
  batch's ``F`` held fixed: ``T'(x) = Q'(F(x)) f(x)``, estimated from order statistics
  as ``(Q(p[i+h]) - Q(p[i-h])) / (x[(i+h)] - x[(i-h)])`` with a window ``h = sqrt(n)``
  (clipped at the ends) so that the estimate is smooth. For a large Gaussian group of
  standard deviation ``sigma`` and a Gaussian target it is close to ``1 / sigma``, what
  GroupNorm would give. Where the window holds only ties (zero spread) the group's
  overall slope ``(Q(p[n-1]) - Q(p[0])) / (max - min)`` is used, and a constant group
  gets zero gradient, so gradients are always finite. ``grad="none"`` reproduces the
  reference (no gradient to the input; ``weight`` and ``bias`` still learn).
* **Running statistics.** With ``track_running_stats=True`` training keeps, per group
  (GroupMap), channel (InstanceMap) or layer (LayerMap), a running estimate of the input
  quantile function at ``num_knots`` fixed levels (buffer ``running_quantiles``), updated
  with ``momentum`` like BatchNorm. In eval mode the input is then mapped through the
  piecewise-linear CDF through those knots (extended beyond the end knots by
  exponential tails, so that outputs follow the target's tails) and ``Q``, so a sample's
  output does not depend on the rest of the batch. Without running statistics, eval
  mode uses the batch's statistics exactly like training mode (the reference's
  behaviour).
* **Speed.** ``method="exact"`` sorts once and scatters ``Q`` values computed once per
  group size (the reference evaluates ``Q`` on every element). It sorts integer keys
  that order like the floats (sign-magnitude bits turned into two's complement, -0.0
  made +0.0 first so that the zeros stay ties), for float32 with the group in the high
  half of an int64, so that a 1-D sort orders many groups: PyTorch runs that as a radix
  sort (on GPU, all groups at once; on CPU in builds with fbgemm, such as the x86
  wheels, and with one torch thread, a block of groups at a time, so that the sort stays
  in cache), about twice as fast on our test machine as a float ``argsort`` of the
  groups. With more torch threads each group is sorted on its own.
  ``method="sketch"`` replaces the sort by a histogram sketch (see :class:`GroupMap`)
  of about a dozen elementwise passes; its Kolmogorov distance to the exact output is
  below 0.01 on Gaussian, uniform and Cauchy data (``bench/quantile_maps.py`` measures
  it, and its speed against GroupNorm).
* **Finite values.** Every finite input gives a finite output and gradient (slopes and
  target values beyond the dtype's range are clamped to its largest number); ``+inf``
  and ``-inf`` map to the largest and smallest outputs, with zero gradient (see
  :class:`GroupMap`).

Layout: :mod:`.targets` (target quantile functions), :mod:`.sorting` (exact mode's
kernel), :mod:`.sketch` (sketch mode's kernel), :mod:`.functional` (the transport
gradient's autograd function and the eval-mode map through running knots),
:mod:`.base` (machinery shared by the modules) and :mod:`.modules` (GroupMap,
InstanceMap, LayerMap).
"""

from __future__ import annotations

from .modules import GroupMap, InstanceMap, LayerMap
from .targets import cauchy, gaussian, laplace, logistic, numpy_target, sparse, uniform

__all__ = [
    "GroupMap",
    "InstanceMap",
    "LayerMap",
    "cauchy",
    "gaussian",
    "laplace",
    "logistic",
    "numpy_target",
    "sparse",
    "uniform",
]
