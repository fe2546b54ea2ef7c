"""Privacy: accountants and calibration (accounting.py) and the DP-SGD engines (engines/)."""
