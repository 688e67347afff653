"""The progress bar of ``fastfnn fit``, fed by the estimator's verbose epoch lines."""

import sys


class Progress:
    """A tqdm bar fed by the estimator's verbose lines ("Iteration N, loss = L", "Validation
    score: S"), so the model trained is exactly the one a plain ``fit`` gives; used as the
    stdout of the fit. Other lines are kept and shown as notes."""

    def __init__(self, total, disable):
        self.total, self.disable = total, disable
        self.buffer, self.stop, self.other = "", None, []
        self.loss = self.score = None
        self.bar = None

    def __enter__(self):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc="training", unit="epoch", file=sys.stderr,
                        disable=self.disable, dynamic_ncols=True, leave=True)
        return self

    def __exit__(self, *exc):
        self.bar.close()

    def write(self, text):
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self._line(line.strip())
        return len(text)

    def flush(self):
        pass

    def _line(self, line):
        if line.startswith("Iteration ") and ", loss = " in line:
            self.loss = float(line.rsplit("= ", 1)[1])
            self.bar.update(1)
        elif line.startswith("Validation score: "):
            self.score = float(line.split(": ", 1)[1])
        elif line.endswith("Stopping."):
            self.stop = line
        elif line:
            self.other.append(line)
        if self.loss is not None:
            postfix = f"loss={self.loss:.4g}"
            if self.score is not None:
                postfix += f", val={self.score:.4f}"
            self.bar.set_postfix_str(postfix, refresh=False)

    def notes(self, caught, args):
        """One-line notes on how training ended, from the stop message and the warnings."""
        from sklearn.exceptions import ConvergenceWarning

        lines = [self.stop] if self.stop else []
        lines += self.other
        for w in caught:
            message = str(w.message).strip().splitlines()[0]
            if issubclass(w.category, ConvergenceWarning):
                lines.append(f"stopped at --epochs {args.epochs} with the training loss still "
                             "falling (scikit-learn's ConvergenceWarning)")
            elif "interrupted" in message:
                lines.append("training interrupted: the results are for the model so far")
            else:
                lines.append(f"{w.category.__name__}: {message}")
        return lines
