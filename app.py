"""DP-RNN Lab dashboard entry point (navigation is added with the dashboard pages)."""

import streamlit as st

st.set_page_config(page_title="DP-RNN Lab", page_icon="🔒", layout="wide")
st.title("DP-RNN Lab")
st.write(
    "Differentially private training of a small GRU language model. The training core is ready and "
    "runs from the command line (`python -m dpcore train --help`); the interactive pages are being built."
)
