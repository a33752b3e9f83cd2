"""The command line: ``main`` dispatches; one module per command family."""
