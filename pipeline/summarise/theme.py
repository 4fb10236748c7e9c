"""One look for every figure: the Okabe-Ito palette and a plain plotnine theme.

The Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design") stays distinguishable under
the common colour-vision deficiencies. Arms always get the same colours: the treatment arm
blue, the control arm orange, further arms the next Okabe-Ito colours. Anything that is not an
arm (reference lines, "other" points) is a neutral grey.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plotnine import (
    element_blank,
    element_line,
    element_rect,
    element_text,
    scale_colour_manual,
    scale_fill_manual,
    theme,
    theme_bw,
)

OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
# Treatment first, control second, then colours for further arms (yellow is left out: too pale
# on white for lines and points).
ARM_COLOURS: tuple[str, ...] = (
    OKABE_ITO["blue"],
    OKABE_ITO["orange"],
    OKABE_ITO["bluish_green"],
    OKABE_ITO["reddish_purple"],
    OKABE_ITO["sky_blue"],
    OKABE_ITO["vermillion"],
)
NEUTRAL_GREY = "#999999"
DARK_GREY = "#4D4D4D"  # text-weight grey for secondary points and annotations
LIGHT_GREY = "#E5E5E5"  # grid lines and box fills
BASE_SIZE = 11.0


def arm_palette(arms: Sequence[str]) -> dict[str, str]:
    """Colours by arm, in the order given (treatment first, then control, then others).

    Parameters
    ----------
    arms : sequence of str
        Arm labels, treatment first and control second.

    Returns
    -------
    dict of str to str
        Hex colour per arm.

    Raises
    ------
    ValueError
        If there are more arms than colours, or an arm is repeated.
    """
    arms = list(arms)
    if len(set(arms)) != len(arms):
        raise ValueError(f"arms must be distinct, got {arms}")
    if len(arms) > len(ARM_COLOURS):
        raise ValueError(
            f"{len(arms)} arms but only {len(ARM_COLOURS)} arm colours: plot fewer arms at a time"
        )
    return dict(zip(arms, ARM_COLOURS, strict=False))


def theme_evidence(base_size: float = BASE_SIZE) -> theme:
    """The house theme: white background, light major grid, no boxes or minor grid.

    Parameters
    ----------
    base_size : float, default 11
        Base font size in points; titles and strips are scaled from it.

    Returns
    -------
    plotnine.theme
        Add it to a ggplot: ``ggplot(...) + theme_evidence()``.
    """
    return theme_bw(base_size=base_size) + theme(
        panel_border=element_blank(),
        panel_grid_minor=element_blank(),
        panel_grid_major=element_line(colour=LIGHT_GREY, size=0.5),
        axis_line=element_line(colour=DARK_GREY, size=0.5),
        axis_ticks=element_line(colour=DARK_GREY, size=0.5),
        axis_text=element_text(colour="#222222", size=base_size * 0.9),
        axis_title=element_text(size=base_size),
        strip_background=element_rect(fill="#F2F2F2", colour="none"),
        strip_text=element_text(size=base_size * 0.95, ha="left", colour="#222222"),
        legend_position="bottom",
        legend_title=element_text(size=base_size * 0.95),
        legend_text=element_text(size=base_size * 0.9),
        legend_key=element_blank(),
        plot_title_position="plot",  # long titles start at the left edge, not above the panel
        plot_caption_position="plot",
        plot_title=element_text(size=base_size * 1.2, ha="left"),
        plot_subtitle=element_text(size=base_size * 0.95, ha="left", colour=DARK_GREY),
        plot_caption=element_text(size=base_size * 0.8, ha="left", colour=DARK_GREY),
        plot_background=element_rect(fill="white", colour="none"),
        panel_background=element_rect(fill="white", colour="none"),
    )


def scale_colour_arms(
    arms: Sequence[str] | None = None, name: str = "Arm", **kwargs: Any
) -> scale_colour_manual:
    """Colour scale for arms (treatment blue, control orange).

    Parameters
    ----------
    arms : sequence of str, optional
        Arm labels, treatment first. Without them colours are given in the order of the
        levels of the mapped variable, so make it a categorical with treatment first.
    name : str, default "Arm"
        Legend title.
    **kwargs
        Passed on to :func:`plotnine.scale_colour_manual` (e.g. ``labels``).

    Returns
    -------
    plotnine.scale_colour_manual
    """
    values = arm_palette(arms) if arms is not None else list(ARM_COLOURS)
    if arms is not None:
        kwargs.setdefault("breaks", list(arms))
    return scale_colour_manual(values=values, name=name, **kwargs)


def scale_fill_arms(
    arms: Sequence[str] | None = None, name: str = "Arm", **kwargs: Any
) -> scale_fill_manual:
    """Fill scale for arms (treatment blue, control orange); see :func:`scale_colour_arms`."""
    values = arm_palette(arms) if arms is not None else list(ARM_COLOURS)
    if arms is not None:
        kwargs.setdefault("breaks", list(arms))
    return scale_fill_manual(values=values, name=name, **kwargs)
