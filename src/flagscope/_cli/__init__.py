"""The command line and the demo: views over the rest."""
