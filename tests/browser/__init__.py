"""Browser end-to-end tests: JupyterLab 4 and Notebook 7 in headless Chromium (see conftest.py)."""
