"""A fairness-constrained classifier a model file may hold: fairlearn's randomized mixture, made reproducible.

fairlearn's ``ExponentiatedGradient`` finds a distribution over classifiers (``predictors_`` with
``weights_``) whose expected selection or error rates meet the constraint; its guarantee is for the mixture used
at random, not for any single classifier in it, nor for their averaged scores (which can fall back to the
unconstrained model's gaps). ``FairMixtureClassifier`` keeps exactly that distribution and replaces the random
draw by one derived from the case itself: a row's features are hashed to a number in [0, 1), and the classifier
whose cumulative weight first exceeds it decides the row. Over many cases the share each classifier decides is
its weight, so the rates are the mixture's; the same features always get the same answer, so a decision can be
replayed and explained. It never sees sensitive attributes: the constraint used them when it was fitted, never
at prediction time. Pure numpy, pandas and scikit-learn: no I/O, no imports at call time (the model-file
allowlist lists it by name).
"""

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

_UNIT = float(2**53)


class FairMixtureClassifier(ClassifierMixin, BaseEstimator):
    """``estimators``: fitted classifiers with the same classes; ``weights``: their shares, summing to 1.

    ``classes``: the labels, in the order of the estimators' own classes, when those are codes (fairlearn's
    reductions fit on 0/1, so a credit model's mixture has ``classes=["deny", "approve"]``).
    """

    def __init__(self, estimators=(), weights=(), classes=None):
        self.estimators = estimators
        self.weights = weights
        self.classes = classes

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes) if self.classes is not None else self.estimators[0].classes_

    @property
    def feature_names_in_(self) -> np.ndarray:
        """The columns its estimators were fitted on (AttributeError when they were fitted on arrays)."""
        return self.estimators[0].feature_names_in_

    def __sklearn_is_fitted__(self) -> bool:
        return bool(self.estimators) and len(self.estimators) == len(self.weights)

    def fit(self, X, y=None):
        """Nothing to learn: the mixture is built from classifiers fitted under a fairness constraint."""
        if not self.estimators or len(self.estimators) != len(self.weights):
            raise ValueError("A fair mixture needs fitted estimators and one weight for each.")
        return self

    def predict_proba(self, X) -> np.ndarray:
        chosen = self.chosen_estimator(X)
        probabilities = np.stack([estimator.predict_proba(X) for estimator in self.estimators])
        return probabilities[chosen, np.arange(len(chosen))]

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def chosen_estimator(self, X) -> np.ndarray:
        """For each row, the index of the classifier that decides it: drawn by the weights, seeded by the row."""
        hashes = pd.util.hash_pandas_object(pd.DataFrame(X).reset_index(drop=True), index=False).to_numpy()
        draws = (hashes >> np.uint64(11)).astype(np.float64) / _UNIT
        cumulative = np.cumsum(np.asarray(self.weights, dtype=np.float64))
        cumulative /= cumulative[-1]
        return np.minimum(np.searchsorted(cumulative, draws, side="right"), len(self.estimators) - 1)
