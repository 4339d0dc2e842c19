"""What one method of one route needs from access control; the table is in ``table.py``."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.auth.access import CATALOG_ACCESS, Access, repository_access


@dataclass(frozen=True)
class Need:
    """``actions`` on the repository named in the path; ``catalog`` is
    ``registry:catalog:*``; ``write`` requests are refused in read-only mode, ``delete``
    requests also when deletes are disabled (``storage.delete.enabled``). A need with none
    of these still requires an authenticated caller (``/v2/``)."""

    actions: tuple[str, ...] = ()
    catalog: bool = False
    write: bool = False
    delete: bool = False

    def required(self, params: dict[str, str]) -> list[Access]:
        required = repository_access(params["name"], *self.actions) if self.actions else []
        if self.catalog:
            required.append(CATALOG_ACCESS)
        return required


def need_for(needs: dict[str, Need], method: str) -> Need | None:
    """The need of ``method``; ``HEAD`` needs what ``GET`` needs."""
    found = needs.get(method)
    if found is None and method == "HEAD":
        found = needs.get("GET")
    return found
