"""The live explorer: ipywidgets sliders for a seed and attribute directions, redrawing one face as they move.

    explorer.explorer(generator, directions)   # the last cell of interpolate.ipynb
"""

from typing import Optional, Sequence

from facegan import latent
from facegan.drawing import ReadyGenerator, draw_faces, seed_vector
from facegan.editing import CANONICAL, Directions
from facegan.images import png_file


def explorer(generator: ReadyGenerator, directions: Directions, shown: Optional[Sequence[str]] = None,
             strongest: int = 6, upscale_factor: int = 4):
    """ipywidgets sliders for a seed and attribute directions (the canonical ones the run has, else the
    `strongest`), each going as far as its measured range (Directions.slider_range), redrawing the one face as
    they move (generation is batch-independent, so each redraw draws one face). Returns the widget box; its
    `sliders` (name → slider, "seed" among them) and `image` are there for code and tests."""
    import ipywidgets as widgets

    canonical = [name for name in CANONICAL if name in directions.names]
    shown = list(shown or canonical or directions.strongest(strongest))
    seed_slider = widgets.IntSlider(value=0, min=0, max=9999, description="seed", continuous_update=False)
    sliders = {name: widgets.FloatSlider(value=0.0, min=-directions.slider_range(name),
                                         max=directions.slider_range(name), step=0.25, description=name[:14],
                                         continuous_update=False) for name in shown}
    image = widgets.Image(format="png")

    def current_z():
        z = seed_vector(seed_slider.value, generator.z_dim)
        return directions.edit(z, {name: slider.value for name, slider in sliders.items()})

    def redraw(change=None):
        face = latent.upscale(draw_faces(generator, current_z()[None]), upscale_factor)[0]
        image.value = png_file(face).getvalue()

    for slider in [seed_slider, *sliders.values()]:
        slider.observe(redraw, names="value")
    redraw()
    box = widgets.HBox([image, widgets.VBox([seed_slider, *sliders.values()])])
    box.sliders, box.image, box.current_z = {"seed": seed_slider, **sliders}, image, current_z
    return box
