"""The ``fastfnn`` command (filled in by the CLI issue)."""


def main(argv=None):
    print("fastfnn: the command-line interface is not built yet.")
    return 0
