"""ipywidgets as both generations have it: 7.7+ (classic Notebook 6, Colab, VS Code's 7 manager) and 8.x.

Everything quiv_nb displays as a widget goes through here, so render code uses only API that both
generations share:

- `view_bundle(widget)`: the widget's view mimebundle, built from its model id. ipywidgets 8 has
  `Widget._repr_mimebundle_`; 7.x has only `_ipython_display_` (which displays by itself and
  returns None); both send the same `application/vnd.jupyter.widget-view+json` version 2.0 data.
- `reopen(model_id, html)`: an HTML widget under a model id a dead kernel displayed (both
  generations' `Widget(model_id=...)` opens its comm with that id).
- `style_class(widget_class)`: the style model a widget class takes (`HTML` takes `HTMLStyle` on
  8 and `DescriptionStyle` on 7), read from the class's own trait rather than from a version.

No widget is created on import; any thread (the pump draws from its own).
"""

from __future__ import annotations

from typing import Any

__all__ = ["VIEW_MIME", "model_id_of", "reopen", "style_class", "view_bundle"]

VIEW_MIME = "application/vnd.jupyter.widget-view+json"


def view_bundle(widget: Any) -> dict[str, Any]:
    """`{VIEW_MIME: {...}}` for an open, displayable widget; `{}` once it is closed. Any thread.

    Closed means no comm: ipywidgets 8 sets `comm` to None on close, 7.x deletes it; a widget class
    without a view name has nothing to show.
    """
    if getattr(widget, "comm", None) is None or getattr(widget, "_view_name", None) is None:
        return {}
    return {VIEW_MIME: {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}}


def model_id_of(widget: Any) -> str | None:
    """The model id a display of `widget` names, or None once it is closed (`view_bundle`'s rule). Any thread."""
    view = view_bundle(widget).get(VIEW_MIME)
    return None if view is None else str(view["model_id"])


def style_class(widget_class: Any) -> Any:
    """The style widget class `widget_class` (e.g. `ipywidgets.HTML`) accepts as `style=`."""
    return widget_class.class_traits()["style"].klass


def reopen(model_id: str, html: str) -> Any:
    """Open an `ipywidgets.HTML` showing `html` under the model id `model_id` (kernel thread).

    A saved output that names `model_id` renders it once a page asks this kernel for its widgets
    (on load or reload). Returns the widget; ipywidgets keeps it alive until it is closed.
    """
    import ipywidgets  # only where widgets are shown: importing render loads no display library

    # No margin of its own: the static rendering carries the widgets' margins, so it sits where the bar was.
    return ipywidgets.HTML(html, model_id=model_id, layout={"margin": "0"})
