"""Streamlit-side helpers shared by the dashboard pages (identity, handles, small widgets).

The training logic lives in :mod:`dpcore`, which never imports streamlit; this package is the
thin layer that turns dpcore results into widgets and charts.
"""
