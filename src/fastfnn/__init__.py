"""fastfnn: fast fully-connected feed-forward networks on the CPU, behind scikit-learn's MLP API."""

from .estimators import FNNClassifier, FNNRegressor
from .gradcheck import check_gradients

__version__ = "0.1.0"
__all__ = ["FNNRegressor", "FNNClassifier", "check_gradients", "__version__"]
