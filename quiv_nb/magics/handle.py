"""`jid = %quiv run f`: a job id that shows the job's live bar when displayed in a later cell."""

from __future__ import annotations

from typing import Any

from ..errors import QuivError
from ..kernel import current_scheduler, request_id

__all__ = ["JobHandle", "show_bar"]


class JobHandle(str):
    """The id of a job (usable wherever a job id string is) that displays as the job's bar.

    In the cell that started the job it displays nothing: the bar is already there, and an
    unassigned `%quiv run f` must not add an `Out[]` line. Pickles as a plain `str`.
    """

    _bar: Any
    _request: str | None

    def __new__(cls, job_id: str, bar: Any = None) -> JobHandle:
        handle = super().__new__(cls, job_id)
        handle._bar = bar
        handle._request = request_id()  # the execute request (cell run) that made the handle
        return handle

    @property
    def bar(self) -> Any:
        """The renderer drawing this job's bar (None for `--bar none`)."""
        return self._bar

    def __reduce__(self) -> tuple[Any, ...]:
        return (str, (str(self),))

    def _shown_here(self) -> bool:
        return self._request is not None and self._request == request_id()

    def _ipython_display_(self) -> None:
        if self._shown_here():
            return
        from IPython.display import display

        if self._bar is not None:
            show_bar(self._bar)
        else:
            display(self._text_bundle(), raw=True)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        if self._bar is not None:
            bundle = getattr(self._bar, "_repr_mimebundle_", None)
            if callable(bundle):
                return dict(bundle(**kwargs) or {})
        return self._text_bundle()

    def _text_bundle(self) -> dict[str, str]:
        scheduler = current_scheduler()
        try:
            job = scheduler.get_job(str(self)) if scheduler is not None else None
        except QuivError:
            job = None
        if job is None:
            return {"text/plain": f"quiv job {self!s} (no longer in this kernel's history)"}
        return {"text/plain": f"quiv job {job.job_id} of {job.task_name!r}: {job.status}"}


def show_bar(bar: Any) -> None:
    """Display `bar` again in the current cell; a widget bar shows the same live widget.

    A renderer that offers `show()` displays itself (under its own display id, so its final
    rendering replaces this copy too); any other is displayed by its mime bundle.
    """
    show = getattr(bar, "show", None)
    if callable(show):
        show()
        return
    from IPython.display import display

    display(bar)
