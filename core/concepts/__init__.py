"""Small worked demos of ideas from the lecture notes, each a pure function of its knobs.

    gradients.py            the score-function (REINFORCE) and pathwise gradient estimators
    likelihood_quality.py   a model with a good likelihood and bad samples (Theis et al. 2016)
    classifiers.py          discriminative against generative classifiers (Ng & Jordan 2002)

Each returns numbers and arrays (numpy, float64), no figures: playground.concepts draws them.
"""

from .classifiers import ClassifierCurves, DecisionRules, classifier_curves, decision_rules
from .gradients import GradientVariance, gradient_variance
from .likelihood_quality import LikelihoodGap, likelihood_gap

__all__ = ["ClassifierCurves", "DecisionRules", "GradientVariance", "LikelihoodGap", "classifier_curves",
           "decision_rules", "gradient_variance", "likelihood_gap"]
