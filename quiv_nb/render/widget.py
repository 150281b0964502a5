"""`bar("widget")`: an ipywidgets bar, redrawn from the render pump thread.

Layout: an `HBox` of an `HTML` label, a `FloatProgress` and an `HTML` text with
`pct value/total [elapsed<eta, rate, postfix]` (tqdm.notebook's layout, with the percentage
moved to the right so the label widget is only sent when the label changes). It is displayed in
the output of the cell that creates it. Each redraw sets each widget inside `hold_sync()` and
only if one of its traits changed, so a running bar costs two messages per redraw (bar and text)
and `pump_draw` returns the number actually sent. All payload text is HTML-escaped.

Styles, and how a browser test finds them (`.quiv-bar` is on the HBox, the status class next
to it; `.progress-bar` is the FloatProgress's inner bar):

=========  ===============================  ============================================
status     widgets                          DOM
=========  ===============================  ============================================
running    bar_style "" (or "info", full,   `.quiv-bar.quiv-running`
           while the total is unknown)
completed  bar_style "success", value=max   `.quiv-bar.quiv-completed .progress-bar-success`
failed     bar_style "danger", the error    `.quiv-bar.quiv-failed .progress-bar-danger`,
           in red in the text               text contains `failed: <escaped error>`
cancelled  bar_style "warning" drawn grey   `.quiv-bar.quiv-cancelled .progress-bar-warning`
           (style.bar_color "#9e9e9e")      (inline `background-color: rgb(158, 158, 158)`),
                                            text contains `cancelled`
=========  ===============================  ============================================

Frontends without widgets (a saved notebook, nbconvert, a terminal) see the text/plain line.
"""

from __future__ import annotations

import html
from dataclasses import replace
from typing import Any

from ..kernel import in_kernel  # the one kernel detector (re-exported for render/__init__)
from . import state as st
from .base import BarRenderer

__all__ = ["WidgetBar", "in_kernel"]

CANCELLED_COLOUR = "#9e9e9e"
_BAR_STYLES = {st.COMPLETED: "success", st.FAILED: "danger", st.CANCELLED: "warning"}
_ERROR_STYLE = "color: var(--jp-error-color1, #d32f2f)"
_MUTED_STYLE = "color: var(--jp-ui-font-color2, #757575)"
_MAX_SHOWN = 120  # characters of an error shown in the text; the hover title has all of `state.message`


def _widgets() -> Any:
    try:
        import ipywidgets
    except ImportError as exc:  # pragma: no cover - ipywidgets is a dependency
        raise ImportError("quiv_nb.bar('widget') needs ipywidgets: pip install ipywidgets") from exc
    return ipywidgets


class WidgetBar(BarRenderer):
    """An ipywidgets progress bar (see the module docstring for its look and DOM classes)."""

    kind = "widget"

    def __init__(self, *, display: bool | None = None, **options: Any) -> None:
        super().__init__(**options)
        w = _widgets()
        idle = self._state
        self._label = w.HTML(_title_html(idle), layout=w.Layout(flex="0 1 auto", overflow="hidden"))
        self._progress = w.FloatProgress(min=0.0, **_progress_traits(idle), layout=w.Layout(flex="1 1 auto"))
        self._text = w.HTML(_text_html(idle), layout=w.Layout(flex="0 1 auto", overflow="hidden"))
        self._box = w.HBox(
            [self._label, self._progress, self._text],
            layout=w.Layout(width="100%"),
            _dom_classes=("quiv-bar", f"quiv-{idle.status}"),
        )
        self._handle: Any = None
        if display if display is not None else in_kernel():
            from IPython.display import display as show

            # A display id lets each final draw refresh the text/plain copy too, so a saved
            # notebook (or a frontend without widgets) shows how the job ended, not "waiting".
            self._handle = show(self, display_id=True)

    @property
    def widget(self) -> Any:
        """The displayed `HBox` (to place it in your own layout)."""
        return self._box

    def _view(self, state: st.BarState, final: bool) -> list[tuple[Any, dict[str, Any]]]:
        """Each widget with the trait values `state` needs, in the order they must be set."""
        return [
            (self._label, {"value": _title_html(state)}),
            (self._progress, _progress_traits(state)),
            (self._progress.style, {"bar_color": CANCELLED_COLOUR if state.status == st.CANCELLED else None}),
            (self._text, {"value": _text_html(state)}),
            (self._box, {"_dom_classes": ("quiv-bar", f"quiv-{state.status}")}),
            (self._box.layout, {"display": "none" if final and not self._leave else None}),
        ]

    def _render(self, state: st.BarState, final: bool) -> int:
        sent = 0
        for widget, values in self._view(state, final):
            changed = {k: v for k, v in values.items() if getattr(widget, k) != v}
            if changed:
                with widget.hold_sync():
                    for name, value in changed.items():
                        setattr(widget, name, value)
                sent += 1
        if final and self._handle is not None:
            self._handle.update(self)
            sent += 1
        return sent

    def close(self) -> None:
        """Stop drawing and close the widgets (their views disappear)."""
        super().close()
        parts = (self._label, self._progress, self._text)
        for widget in (self._box, *parts, self._progress.style, self._box.layout, *(p.layout for p in parts)):
            widget.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        box_repr = self._box._repr_mimebundle_  # ipywidgets 8 sets it to None when the widget is closed
        data = dict(box_repr(**kwargs) or {}) if callable(box_repr) else {}
        data["text/plain"] = self.line
        return data


def _title_html(state: st.BarState) -> str:
    return html.escape(st.format_title(state))


def _progress_traits(state: st.BarState) -> dict[str, Any]:
    """FloatProgress traits: `max` before `value` (a value above the old max would be clipped)."""
    style = _BAR_STYLES.get(state.status, "")
    if state.total is not None:
        return {"max": state.total, "value": min(state.value, state.total), "bar_style": style}
    if state.status == st.IDLE:
        return {"max": 1.0, "value": 0.0, "bar_style": ""}
    return {"max": 1.0, "value": 1.0, "bar_style": style or "info"}  # unknown total: a full bar


def _text_html(state: st.BarState) -> str:
    """The escaped right-hand text: numbers, then the status of a final state."""
    text = html.escape(st.format_stats(state))
    status = st.format_status(state)
    if state.status == st.FAILED:
        shown = st.format_status(replace(state, message=st.clean_text(state.message, _MAX_SHOWN)))
        title = html.escape(state.message, quote=True)
        return f'{text} <span style="{_ERROR_STYLE}" title="{title}">{html.escape(shown)}</span>'
    if state.status in (st.CANCELLED, st.IDLE):
        return f'{text} <span style="{_MUTED_STYLE}">{html.escape(status)}</span>'
    return text
