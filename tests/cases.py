"""The activations and (loss, output activation) pairs the network must support, written out here
(not imported from the package, so that a case dropped from the code is still tested)."""

SKLEARN_HIDDEN_ACTS = ["identity", "logistic", "tanh", "relu"]
HIDDEN_ACTS = SKLEARN_HIDDEN_ACTS + ["leaky_relu", "elu", "softplus", "gelu", "silu"]
SKLEARN_PAIRS = [
    ("squared_error", "identity"),
    ("squared_error", "logistic"),
    ("squared_error", "tanh"),
    ("squared_error", "relu"),
    ("squared_error", "exp"),
    ("poisson", "exp"),
    ("binary_log_loss", "logistic"),
    ("log_loss", "softmax"),
]
# fastfnn's additions (their oracles: tests/test_model_family.py)
PAIRS = SKLEARN_PAIRS + [("huber", "identity"), ("absolute_error", "identity")]
