"""One class per method, each declaring what it needs of the data term.

The torch optimizers of the SGD family, the full-batch solvers (Newton,
L-BFGS, conjugate gradients, FISTA, the smoothing of a non-smooth loss) and
the exact squared-loss path (closed form and coordinate descent on the
moments).
"""
