"""fastfnn: fast fully-connected feed-forward networks on the CPU, behind scikit-learn's MLP API."""

from .activations import HIDDEN_ACTIVATIONS
from .estimators import FNNClassifier, FNNRegressor
from .gradcheck import check_gradients
from .losses import REGRESSION_LOSSES
from .model_io import load_model, save_model

__version__ = "0.1.0"
__all__ = ["FNNRegressor", "FNNClassifier", "check_gradients", "HIDDEN_ACTIVATIONS",
           "REGRESSION_LOSSES", "save_model", "load_model", "__version__"]
