"""fastfnn: fast fully-connected feed-forward networks on the CPU, behind scikit-learn's MLP API."""

from .activations import HIDDEN_ACTIVATIONS
from .ensemble import FNNEnsembleClassifier, FNNEnsembleRegressor
from .estimators import FNNClassifier, FNNRegressor
from ._version import __version__
from .gradcheck import check_gradients, gradcheck_cases
from .losses import REGRESSION_LOSSES
from .model_io import load_model, save_model
from .optimizers import SCHEDULES, SOLVERS
from .preprocessing import TextCells
from .search import FNNGridSearchCV, FNNRandomizedSearchCV

__all__ = ["FNNRegressor", "FNNClassifier", "FNNGridSearchCV", "FNNRandomizedSearchCV",
           "FNNEnsembleRegressor", "FNNEnsembleClassifier", "check_gradients", "gradcheck_cases",
           "HIDDEN_ACTIVATIONS", "REGRESSION_LOSSES", "SOLVERS", "SCHEDULES", "save_model",
           "load_model", "TextCells", "__version__"]
