"""Privacy: mechanisms and accountants (registry), ε accounting and calibration, the plan of a run,
the δ rules, secure noise, and private decoding with its composition. See dpcore/__init__.py."""
