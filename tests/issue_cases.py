"""The activations and (loss, output activation) pairs issue 2 asks to test, written out from the
issue's text (not imported from the package, so a case dropped from the code is still tested)."""

HIDDEN_ACTS = ["identity", "logistic", "tanh", "relu"]
PAIRS = [
    ("squared_error", "identity"),
    ("squared_error", "logistic"),
    ("squared_error", "tanh"),
    ("squared_error", "relu"),
    ("squared_error", "exp"),
    ("poisson", "exp"),
    ("binary_log_loss", "logistic"),
    ("log_loss", "softmax"),
]
