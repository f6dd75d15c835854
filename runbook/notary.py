"""Trusting a run's notebooks, so that JupyterLab renders their stored forms.

Kept apart from :mod:`runbook.forms` so that the ``runbook`` command can sign
a run's notebooks without importing ipywidgets.
"""

from __future__ import annotations

from pathlib import Path


def trust_notebooks(folder: Path) -> list[Path]:
    """Sign every notebook in ``folder`` with the user's Jupyter notary; return them.

    JupyterLab renders widgets (and HTML) only in trusted notebooks, so a run
    trusts the notebooks it executed itself; opened later, they show the form
    as it was. Signing changes no file (the notary keeps the signature in its
    database under the Jupyter data dir). Raises ``OSError`` when that
    database cannot be written.
    """
    import nbformat
    from nbformat.sign import NotebookNotary

    notary = NotebookNotary()
    signed = []
    for path in sorted(Path(folder).glob("*.ipynb")):
        notary.sign(nbformat.read(path, as_version=4))
        signed.append(path)
    return signed
