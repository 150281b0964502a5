"""`NullStore`: what the scheduler talks to when it has no store (`Quiv()` alone writes nothing)."""

from __future__ import annotations

from typing import Any

__all__ = ["NULL_STORE", "NullStore"]


class NullStore:
    """Every `seams.JobStore` call does nothing; no result is ever cached."""

    __slots__ = ()

    def job_changed(self, job: Any) -> None:
        return None

    def job_ended(self, job: Any) -> None:
        return None

    def cache_base(self, task: Any, pin: str | None) -> None:
        return None

    def step_key(self, task: Any, upstream: dict[str, Any]) -> None:
        return None

    def has_result(self, key: str) -> bool:
        return False

    def load_result(self, key: str) -> tuple[bool, Any, None]:
        return False, None, None

    def dump_result(self, job: Any, result: Any) -> None:
        return None

    def sync(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float | None = None) -> None:
        return None


NULL_STORE = NullStore()
