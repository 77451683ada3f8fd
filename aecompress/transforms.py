"""The float transforms: analysis g_a, synthesis g_s and hyper-analysis h_a.

    x (3, H, W) --g_a--> y (M, H/16, W/16) --h_a--> z (N, H/64, W/64)
    y_hat --g_s--> x_hat

The hyper-synthesis h_s is an integer network and lives in intnet.py: its outputs choose
the entropy coder's tables, so it must give the same integers on every machine. g_s may
run anywhere in any precision; it only moves pixels by a rounding step.
"""

from __future__ import annotations

from torch import nn

from .layers import GDN, conv, deconv


def g_a(N: int, M: int, simplified_gdn: bool = False) -> nn.Sequential:
    """Analysis transform: four stride-2 convolutions, GDN between them (Balle et al. 2017)."""
    return nn.Sequential(
        conv(3, N), GDN(N, simplified=simplified_gdn),
        conv(N, N), GDN(N, simplified=simplified_gdn),
        conv(N, N), GDN(N, simplified=simplified_gdn),
        conv(N, M),
    )


def g_s(N: int, M: int, simplified_gdn: bool = False) -> nn.Sequential:
    """Synthesis transform: the mirror of g_a with inverse GDN."""
    return nn.Sequential(
        deconv(M, N), GDN(N, inverse=True, simplified=simplified_gdn),
        deconv(N, N), GDN(N, inverse=True, simplified=simplified_gdn),
        deconv(N, N), GDN(N, inverse=True, simplified=simplified_gdn),
        deconv(N, 3),
    )


def h_a(N: int, M: int) -> nn.Sequential:
    """Hyper-analysis: summarizes the scale and mean structure of y in z at 1/4 of y's size."""
    return nn.Sequential(
        conv(M, N, kernel=3, stride=1), nn.LeakyReLU(inplace=True),
        conv(N, N), nn.LeakyReLU(inplace=True),
        conv(N, N),
    )
