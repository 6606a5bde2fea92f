"""A classifier's scores and probabilities: ``decision_function``,
``predict_proba`` and ``predict_log_proba`` from the fitted columns."""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.utils._available_if import available_if
from sklearn.utils.validation import check_is_fitted

from ..data._array_api import check_fitted_namespace, output_space, to_numpy_any

__all__ = ["PROBA_LOSSES", "ClassScoresMixin", "probabilities"]

# losses whose decision function maps to probabilities
PROBA_LOSSES = ("log_loss", "modified_huber")


class ClassScoresMixin:
    """Scores and probabilities of a classifier whose ``_decision`` gives
    the raw outputs of its problems (mixed in before scikit-learn's
    ``LinearClassifierMixin``, whose ``decision_function`` it replaces);
    ``_joint()`` says whether the columns form one softmax problem.
    """

    def decision_function(self, X):
        """Signed scores: the raw linear output of each binary problem.

        Parameters
        ----------
        X : {array-like, sparse matrix, torch.Tensor} of shape \
                (n_samples, n_features)
            Samples to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            For two classes, positive scores favour ``classes_[1]``.
        """
        # numpy, or X's namespace under dispatch
        scores = self._decision(X, method="decision_function")
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def _check_proba(self):
        if self.loss not in PROBA_LOSSES:
            raise AttributeError(
                f"probability estimates are not available for loss={self.loss!r}; "
                f"use one of {list(PROBA_LOSSES)} or "
                "CalibratedClassifierCV."
            )
        return True

    @available_if(_check_proba)
    def predict_proba(self, X):
        """Class probabilities (loss "log_loss" or "modified_huber").

        Multinomial models give the softmax of the scores. One-vs-rest models
        give each binary problem's probability of its class, the logistic
        sigmoid of the score (log_loss) or ``(clip(score, -1, 1) + 1) / 2``
        (modified_huber), normalised over classes as SGDClassifier does.

        Parameters
        ----------
        X : {array-like, sparse matrix, torch.Tensor} of shape \
                (n_samples, n_features)
            Samples whose class probabilities to estimate.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            In the order of ``classes_``.
        """
        check_is_fitted(self)
        check_fitted_namespace(X, self, "predict_proba")
        if self.loss == "log_loss" and not self._joint():
            return self._predict_proba_lr(X)
        space = output_space(X)
        scores = to_numpy_any(self.decision_function(X))
        prob = probabilities(scores, self._joint())
        return prob if space is None else space.put(prob)

    @available_if(_check_proba)
    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba` (computed stably for softmax).

        Parameters
        ----------
        X : {array-like, sparse matrix, torch.Tensor} of shape \
                (n_samples, n_features)
            Samples whose log-probabilities to estimate.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        check_fitted_namespace(X, self, "predict_log_proba")
        space = output_space(X)
        if self._joint():
            out = log_softmax(to_numpy_any(self.decision_function(X)), axis=1)
        else:
            with np.errstate(divide="ignore"):
                out = np.log(to_numpy_any(self.predict_proba(X)))
        return out if space is None else space.put(out)


def probabilities(scores, joint) -> np.ndarray:
    """Class probabilities from the scores: their softmax (``joint``), else
    ``(clip(score, -1, 1) + 1) / 2`` per problem, normalised over classes
    as SGDClassifier does."""
    if joint:
        return softmax(scores, axis=1)
    prob = (np.clip(scores, -1, 1) + 1) / 2
    if prob.ndim == 1:
        return np.stack([1 - prob, prob], axis=1)
    total = prob.sum(1, keepdims=True)
    # rows where every problem says "not mine": uniform
    prob[total[:, 0] == 0] = 1
    total[total == 0] = prob.shape[1]
    return prob / total
