"""How a bar's state looks: colours, progress traits and HTML, without any widget.

`render.widget` sets these on its widgets; `static_html` is the self-contained rendering a
finished bar is replaced by (and what a saved notebook, nbconvert or GitHub shows).

Styles, and how a browser test finds them (`.quiv-bar` is on the HBox and on the static
rendering's root, the status class next to it; `.progress-bar` is the FloatProgress's inner bar):

=========  ===============================  ============================================
status     widgets                          DOM
=========  ===============================  ============================================
running    bar_style "" (or "info", full,   `.quiv-bar.quiv-running` (the progress widget
           striped, while the total is      has `.quiv-indeterminate` while the total is
           unknown)                         unknown)
completed  bar_style "success", value=max   `.quiv-bar.quiv-completed .progress-bar-success`
failed     bar_style "danger", the error    `.quiv-bar.quiv-failed .progress-bar-danger`,
           in red in the text               text contains `failed: <escaped error>`
cancelled  bar_style "warning" drawn grey   `.quiv-bar.quiv-cancelled .progress-bar-warning`
           (style.bar_color "#9e9e9e")      (inline `background-color: rgb(158, 158, 158)`),
                                            text contains `cancelled`
skipped    as cancelled, striped            `.quiv-bar.quiv-skipped`, text `skipped: <reason>`
interr-    bar_style "warning" (orange),    `.quiv-bar.quiv-interrupted`, text
upted      at the step reached              `interrupted (kernel restarted)`
=========  ===============================  ============================================

A static final rendering is `div.quiv-bar.quiv-static.quiv-<status>`. A shortened error has the
full text in its `title` (hover).
"""

from __future__ import annotations

import html
from dataclasses import replace
from typing import Any

from . import state as st

__all__ = [
    "BAR_WIDTH",
    "CACHED_COLOUR",
    "CANCELLED_COLOUR",
    "LABEL_WIDTH",
    "bar_colour",
    "box_classes",
    "progress_traits",
    "static_html",
    "text_html",
    "title_html",
]

BAR_WIDTH = 320  # px: every bar is this wide, as tqdm.notebook's are
# Every label takes exactly this room, so the bars of a notebook start at the same x whatever their labels
# ("extract: reading" fits; a longer one is shortened with an ellipsis and shown whole on hover).
LABEL_WIDTH = "14em"
CANCELLED_COLOUR = "#9e9e9e"
CACHED_COLOUR = "#00897b"  # teal: a cached step's reused result, told apart from a run that completed
_GREY = frozenset({st.CANCELLED, st.SKIPPED})
_BAR_STYLES = {
    st.COMPLETED: "success",
    st.FAILED: "danger",
    st.CANCELLED: "warning",
    st.SKIPPED: "warning",
    st.INTERRUPTED: "warning",
}
_ERROR_STYLE = "color: var(--jp-error-color1, #d32f2f)"
_MUTED_STYLE = "color: var(--jp-ui-font-color2, #757575)"
_MAX_SHOWN = 120  # characters of an error shown in the text; the hover title has all of `state.message`
_STRIPES = (
    "background-image:linear-gradient(45deg,rgba(255,255,255,.35) 25%,transparent 25%,transparent 50%,"
    "rgba(255,255,255,.35) 50%,rgba(255,255,255,.35) 75%,transparent 75%,transparent);background-size:16px 16px"
)
# Sent inside the text widget (an HTML widget's <style> applies where the frontend renders it):
# label and text on one line, cut with an ellipsis, tabular digits; the stripes only while needed.
_FILL_INTERRUPTED = "#f57c00"
# A running bar whose kernel went away (restart, shutdown, death): the widget manager marks its views
# `jupyter-widgets-disconnected` at once, and no message of the dying kernel reaches the page any more
# (JupyterLab drops the old kernel's session), so the page itself must stop it looking alive: the
# numbers and ETA give way to "interrupted", the fill turns orange and stops moving.
_CSS_LINE = (
    "<style>.quiv-bar .widget-html-content{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;"
    "font-variant-numeric:tabular-nums}"
    ".quiv-bar.jupyter-widgets-disconnected::before,.quiv-bar .jupyter-widgets-disconnected::before{display:none}"
    ".quiv-bar.quiv-running.jupyter-widgets-disconnected>.widget-html:last-child{display:none}"
    ".quiv-bar.quiv-running.jupyter-widgets-disconnected::after{content:'interrupted (kernel restarted or stopped)';"
    "align-self:center;white-space:nowrap;color:var(--jp-ui-font-color2,#757575);padding-left:4px}"
    f".quiv-bar.quiv-running.jupyter-widgets-disconnected .progress-bar{{background-color:{_FILL_INTERRUPTED}"
    "!important;animation:none!important}</style>"
)
_CSS_STRIPES = (
    f"<style>.quiv-bar .quiv-indeterminate .progress-bar{{width:100%!important;{_STRIPES};"
    "animation:quiv-bar-stripes 1s linear infinite}"
    f".quiv-bar.quiv-skipped .progress-bar{{{_STRIPES}}}"
    "@keyframes quiv-bar-stripes{from{background-position:16px 0}to{background-position:0 0}}</style>"
)
# Fill colours of the static rendering: JupyterLab's light-theme values of the variables
# ipywidgets uses (a saved notebook may be shown where no variable is defined).
_FILL = {
    st.COMPLETED: "#388e3c",
    st.FAILED: "#d32f2f",
    st.CANCELLED: CANCELLED_COLOUR,
    st.SKIPPED: CANCELLED_COLOUR,
    st.INTERRUPTED: _FILL_INTERRUPTED,
}


def box_classes(state: st.BarState) -> tuple[str, ...]:
    return ("quiv-bar", f"quiv-{state.status}")


def title_html(state: st.BarState) -> str:
    """The escaped label, whole in its hover title (the label column may shorten it)."""
    title = st.format_title(state)
    return f'<span title="{html.escape(title, quote=True)}">{html.escape(title, quote=False)}</span>' if title else ""


def bar_colour(state: st.BarState) -> str | None:
    """The bar colour over the bar style's own: grey when cancelled or skipped, teal when cached."""
    return CANCELLED_COLOUR if state.status in _GREY else CACHED_COLOUR if state.cached else None


def progress_traits(state: st.BarState) -> dict[str, Any]:
    """FloatProgress traits: `max` before `value` (a value above the old max would be clipped).

    The class `quiv-indeterminate` (stripes that move) sits on the progress widget, so it
    changes in the same message as the value when a total becomes known.
    """
    style = _BAR_STYLES.get(state.status, "")
    plain = {"_dom_classes": ()}
    if state.status == st.SKIPPED:
        return {"max": 1.0, "value": 1.0, "bar_style": style, **plain}  # a grey, striped full bar
    if state.total is not None:
        return {"max": state.total, "value": min(state.value, state.total), "bar_style": style, **plain}
    if state.status == st.IDLE:
        return {"max": 1.0, "value": 0.0, "bar_style": "", **plain}
    moving = {"_dom_classes": ("quiv-indeterminate",)} if state.status == st.RUNNING else plain
    return {"max": 1.0, "value": 1.0, "bar_style": style or "info", **moving}  # unknown total: a full bar


def _text_parts(state: st.BarState) -> tuple[str, str, str, str]:
    """(escaped numbers, escaped status as shown, the status with the whole message for a title, its style)."""
    numbers = st.format_stats(state)
    if state.status == st.IDLE:
        numbers = ""  # not "0it [00:00, ?it/s]": the status says what it waits for
    elif not state.reported:
        # Nothing counted: no "0it [00:00, ?it/s]". The stripes move while it runs (the pump redraws only on
        # payloads, so an elapsed time here would stand still); the final status says how long it took.
        numbers = "" if state.is_final else "running…"
    full = st.format_status(replace(state, message=state.detail or state.message))
    shown = st.format_status(replace(state, message=st.clean_text(state.message, _MAX_SHOWN)))
    if state.status == st.FAILED:
        return _esc(numbers), _esc(shown), full, _ERROR_STYLE
    if state.status in (st.CANCELLED, st.SKIPPED, st.IDLE, st.INTERRUPTED):
        return _esc(numbers), _esc(shown), full, _MUTED_STYLE
    if state.cached:
        return _esc(numbers), _esc(shown), full, f"color: {CACHED_COLOUR}"
    return _esc(numbers), _esc(shown), "", ""


def _esc(text: str) -> str:
    """Escape text for element content (quotes stay readable: `done → 'ok'`)."""
    return html.escape(text, quote=False)


def text_html(state: st.BarState) -> str:
    """The escaped right-hand text: numbers, then the status of a final state (full text on hover)."""
    numbers, shown, full, style = _text_parts(state)
    text = numbers
    if style:
        title = html.escape(full, quote=True)
        text = f'{numbers} <span style="{style}" title="{title}">{shown}</span>'.lstrip()
    elif shown:
        text = f"{numbers} {shown}".strip()
    text += _CSS_LINE
    if state.status in (st.RUNNING, st.SKIPPED) and (state.total is None or state.status == st.SKIPPED):
        text += _CSS_STRIPES
    return text


def static_html(state: st.BarState) -> str:
    """A self-contained HTML rendering of a bar (inline styles, no script, no widget model).

    What a saved notebook shows for a finished bar: the label, a `BAR_WIDTH` bar filled in the
    status colour (striped when skipped), and the text with the full error on hover.
    """
    fraction = state.fraction
    if fraction is None or state.status == st.SKIPPED:
        fraction = 1.0 if state.status != st.IDLE else 0.0
    fill = bar_colour(state) or _FILL.get(state.status, "#1976d2")
    style_name = _BAR_STYLES.get(state.status)  # the widget's classes too, so one selector finds both renderings
    bar_class = f" progress-bar-{style_name}" if style_name else ""
    stripes = f";{_STRIPES}" if state.status == st.SKIPPED else ""
    numbers, shown, full, style = _text_parts(state)
    text = f'{numbers} <span style="{style}">{shown}</span>'.strip() if style else f"{numbers} {shown}".strip()
    title = html.escape(full or st.format_meter(state), quote=True)
    label = title_html(state)
    # The widgets' geometry, so a bar keeps its place when it turns static: their font size, the label's
    # minimum width (always there, empty or not) and each part's 2 px margins (ipywidgets' --jp-widgets-margin).
    return (
        f'<div class="quiv-bar quiv-static quiv-{html.escape(state.status)}" style="white-space:nowrap;'
        "overflow:hidden;text-overflow:ellipsis;line-height:24px;font-variant-numeric:tabular-nums;"
        'font-size:var(--jp-widgets-font-size,13px)">'
        f'<span style="display:inline-block;vertical-align:middle;width:{LABEL_WIDTH};overflow:hidden;'
        f'text-overflow:ellipsis;margin:0 2px">{label}</span>'
        f'<span style="display:inline-block;vertical-align:middle;width:{BAR_WIDTH}px;height:18px;'
        'background:#e0e0e0;margin:0 2px">'
        f'<span class="progress-bar{bar_class}" style="display:block;height:100%;width:{fraction * 100:.1f}%;'
        f'background-color:{fill}{stripes}"></span></span>'
        f'<span style="margin-left:2px" title="{title}">{text}</span></div>'
    )
