"""`bar("widget")`: an ipywidgets bar, redrawn from the render pump thread.

Layout: an `HBox` of an `HTML` label, a `FloatProgress` and an `HTML` text with
`pct value/total [elapsed<eta, rate, postfix]` (tqdm.notebook's layout, with the percentage
moved to the right so the label widget is only sent when the label changes). Every bar has the
same fixed width (`BAR_WIDTH`) after a label column of one width (`LABEL_WIDTH`: bars line up
whatever their labels; a longer label ends in an ellipsis, the whole of it on hover), and the
text uses tabular digits and takes the rest of the line, clipped with an ellipsis: a changing
text never moves or resizes the bar. Each redraw sets each widget inside `hold_sync()` and only
if one of its traits changed, so a running bar costs two messages per redraw (bar and text) and
`pump_draw` returns the number actually sent. All payload text is HTML-escaped.

A run that reports no progress (no total) draws an indeterminate bar: full, striped and moving;
it ends with "done in 1.5s → 'ok'" (a short repr of the result).

How a bar ends (docs/design.md, "How a bar ends"). A bar displayed by `bar()` itself (in a
kernel, or `display=True`) has a display id. When a run ends, its final state is first drawn into
the widgets (every view hears that through the comm, including a page reloaded while the job ran,
which has no future for the old execute request and so never receives display updates), then the
display is replaced by the static final rendering (`static_html`, inline styles only, plus the
text/plain line), which is what a page that displayed the bar saves. The widget models of a
finished bar stay open, so reloaded pages keep showing its end; only the models of the oldest
finished bars beyond `KEEP_FINISHED` are closed. The next run of the same renderer draws into the
same widgets (fresh ones if its models were closed) in the same place. A bar you place yourself
(`display=False`, `bar.widget`) stays a live widget and shows its final state in the widgets.
Every bundle carries a text/html rendering of the state too, for renderers without widgets
(nbconvert, GitHub).

How each status looks, and the static rendering: `bar_look`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ..hooks import host, view_recorder
from . import bar_look as look
from . import state as st
from .base import BarRenderer
from .ipyw import model_id_of, view_bundle

__all__ = ["KEEP_FINISHED", "WidgetBar", "in_kernel"]


def in_kernel() -> bool:
    """True inside a running Jupyter kernel, as the registered `seams.Host` says (any thread)."""
    kernel = host()
    return kernel is not None and kernel.in_kernel()


# Finished bars whose widget models stay open (each has ten models, a few kB): a page reloaded while
# their jobs ran shows them through these models. Beyond, the oldest finished bar's models are closed.
KEEP_FINISHED = 100


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
        self._build(self._state)
        self._handle: Any = None
        self._static = False  # the display shows a static final rendering (the widgets show the same end)
        self._closed = False  # the widget models are closed (an old finished bar, or `close()`)
        self._recorded: tuple[int, bool] | None = None  # (run, final) whose afterlife was last recorded
        if display if display is not None else in_kernel():
            from IPython.display import display as show

            # A display id lets a final draw replace the widget with its static rendering.
            self._handle = show(self, display_id=True)

    def _build(self, state: st.BarState) -> None:
        """Create the widgets showing `state` (on creation, and for a run after a static final)."""
        w = _widgets()
        label_layout = w.Layout(flex="0 0 auto", width=look.LABEL_WIDTH, min_width=look.LABEL_WIDTH, overflow="hidden")
        self._label = w.HTML(look.title_html(state), layout=label_layout)
        progress_layout = w.Layout(width=f"{look.BAR_WIDTH}px", min_width=f"{look.BAR_WIDTH}px", flex="0 0 auto")
        self._progress = w.FloatProgress(min=0.0, **look.progress_traits(state), layout=progress_layout)
        self._text = w.HTML(look.text_html(state), layout=w.Layout(flex="1 1 0", min_width="0", overflow="hidden"))
        self._box = w.HBox(
            [self._label, self._progress, self._text],
            layout=w.Layout(width="100%", overflow="hidden"),
            _dom_classes=look.box_classes(state),
        )

    @property
    def widget(self) -> Any:
        """The displayed `HBox` (to place it in your own layout; create the bar with `display=False` then)."""
        return self._box

    def _view(self, state: st.BarState, final: bool) -> list[tuple[Any, dict[str, Any]]]:
        """Each widget with the trait values `state` needs, in the order they must be set."""
        return [
            (self._label, {"value": look.title_html(state)}),
            (self._progress, look.progress_traits(state)),
            (self._progress.style, {"bar_color": look.bar_colour(state)}),
            (self._text, {"value": look.text_html(state)}),
            (self._box, {"_dom_classes": look.box_classes(state)}),
            (self._box.layout, {"display": "none" if final and not self._leave else None}),
        ]

    def _render(self, state: st.BarState, final: bool) -> int:
        sent = self._show(state, final)
        self._record_afterlife(state, final)
        return sent

    def _record_afterlife(self, state: st.BarState, final: bool) -> None:
        """Record what the displayed model should read if the kernel ended now (pump thread; never raises).

        Once per run start and end (`hooks.view_recorder`, `store.views`): while a job runs, its
        bar "interrupted (kernel died)"; once it ended, its final rendering. The next kernel of
        the notebook reopens the model with it, so a page that loads then shows it.
        """
        recorder = view_recorder()
        key = (self._drawn_seq, final)
        if recorder is None or self._handle is None or self._closed or key == self._recorded:
            return
        model_id = model_id_of(self._box)
        if model_id is None:  # its widgets were closed by other code: nothing to reopen
            return
        self._recorded = key
        end = state if final else st.finish(state, st.INTERRUPTED, "kernel died")
        shown = self._leave or not final
        try:
            recorder(model_id, look.static_html(end) if shown else "", st.format_meter(end) if shown else "")
        except Exception:
            self._log_once()

    def _show(self, state: st.BarState, final: bool) -> int:
        """Show `state`: in the widgets, and at a run's end as the display's static rendering (pump thread)."""
        sent = 0
        if self._handle is not None and self._static and final:
            # A whole run fell between two draws (a quick job of a recurring task): its end replaces the last
            # end in place. Showing the live widgets here would leave a widget view in the saved notebook.
            if not self._closed:
                sent += self._draw_widgets(state, final)
            return sent + self._show_static(state)
        if self._handle is not None and self._static:  # a new run after a final: live widgets again, same place
            _finished.discard(self)
            if self._closed:
                self._build(state)
                self._closed = False
            self._static = False
            sent += self._draw_widgets(state, final) + 1
            self._handle.update(self)
            return sent
        sent += self._draw_widgets(state, final)
        if self._handle is not None and final:
            sent += self._show_static(state)
        return sent

    def _draw_widgets(self, state: st.BarState, final: bool) -> int:
        """Set each widget's changed traits, one batched message per widget (pump thread)."""
        sent = 0
        for widget, values in self._view(state, final):
            changed = {k: v for k, v in values.items() if getattr(widget, k) != v}
            if changed:
                with widget.hold_sync():
                    for name, value in changed.items():
                        setattr(widget, name, value)
                sent += 1
        return sent

    def _show_static(self, state: st.BarState) -> int:
        """Replace the display with the static final bar (pump thread); the models stay open (`KEEP_FINISHED`).

        The widgets already show the same end: a view this update cannot reach (a reloaded page) keeps
        showing it through them.
        """
        bundle = {"text/html": look.static_html(state), "text/plain": st.format_meter(state)} if self._leave else {}
        self._handle.update(bundle or {"text/plain": ""}, raw=True)
        self._static = True
        return 1 + (0 if self._closed else _finished.add(self))

    def _close_models(self) -> int:
        """Close every widget model of this bar (its remaining views disappear); the number closed."""
        self._closed = True
        models = self._models()
        for widget in models:
            widget.close()
        return len(models)

    def show(self) -> None:
        """Display the bar again in the current cell (kernel thread; `%quiv run` re-attaching to a running job).

        Under the bar's own display id, so the final static rendering replaces this copy too; a plain
        `display(bar)` would leave a widget view whose model is closed at the end (an empty output live, and
        "Error displaying widget: model not found" once the notebook is saved and reopened).
        """
        from IPython.display import display as show

        if self._handle is None:
            self._handle = show(self, display_id=True)
        else:
            show(self, display_id=self._handle.display_id)

    def _models(self) -> list[Any]:
        """Every widget model this bar opened: the four widgets and their layouts and styles."""
        parts = (self._box, self._label, self._progress, self._text)
        extra = [getattr(p, attr, None) for p in parts for attr in ("layout", "style")]
        return [*parts, *(e for e in extra if e is not None)]

    def close(self) -> None:
        """Stop drawing and close the widgets (their views disappear)."""
        super().close()
        _finished.discard(self)
        self._close_models()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # text/html for renderers without widgets (nbconvert drops a widget view it has no state for).
        data = {"text/html": look.static_html(self._state), "text/plain": self.line}
        if self._static or self._closed:
            return data
        return {**view_bundle(self._box), **data}  # the widget view on both ipywidgets generations (ipyw.py)


class _Finished:
    """The finished bars whose widget models are still open, oldest first; beyond `KEEP_FINISHED` the oldest's
    models are closed. Called on the pump thread (`add`) and on any thread (`discard`)."""

    def __init__(self) -> None:
        self._bars: OrderedDict[int, WidgetBar] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, bar: WidgetBar) -> int:
        """Keep `bar`'s models open; close the oldest bars' beyond the bound. The number of models closed."""
        with self._lock:
            self._bars[id(bar)] = bar
            self._bars.move_to_end(id(bar))
            old = [self._bars.popitem(last=False)[1] for _ in range(len(self._bars) - KEEP_FINISHED)]
        return sum(b._close_models() for b in old)

    def discard(self, bar: WidgetBar) -> None:
        with self._lock:
            self._bars.pop(id(bar), None)

    def __len__(self) -> int:
        return len(self._bars)


_finished = _Finished()
