"""Shared pieces of the figures: axis names, and matplotlib imported on first use."""
from __future__ import annotations

#: Axis labels with units, by label column.
LABEL_NAMES = {
    "flux": "flux [e-]",
    "sersic_n": "Sérsic index n",
    "sersic_r": "half-light radius r [arcsec]",
    "g1": "shear g1",
    "g2": "shear g2",
}


def _plt():
    import matplotlib.pyplot as plt
    return plt
