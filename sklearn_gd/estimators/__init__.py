"""The scikit-learn faces of the package.

:class:`~sklearn_gd.TorchSGDRegressor`, :class:`~sklearn_gd.TorchSGDClassifier`
and their cross-validated forms: parameters and their validation, the
transactional fit (a failed fit leaves the fitted model as it was), the
commit of the fitted state, prediction and pickling. Everything below is
reached from here; nothing below imports it.
"""
