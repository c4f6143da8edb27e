"""The newest `podrec evaluate` report under ``server.reports_dir``, and its files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.responses import FileResponse

from podrec.server.auth import CLIENT
from podrec.server.deps import Settings, router
from podrec.service import NotFoundError

# The files of a report served, by suffix, with the media type each is sent as.
REPORT_FILES = {".png": "image/png", ".svg": "image/svg+xml", ".json": "application/json",
                ".md": "text/markdown"}

routes = router("reports")


def latest_report(reports_dir: Path) -> Path | None:
    """The newest results.json under ``reports_dir``."""
    if not reports_dir.is_dir():
        return None
    found = [p for p in reports_dir.rglob("results.json") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


@routes.get("/reports/latest", dependencies=[CLIENT], responses={
    404: {"description": "no `podrec evaluate` report under server.reports_dir"}})
def latest(settings: Settings) -> dict[str, Any]:
    """The newest `podrec evaluate` run under server.reports_dir: its results.json,
    its Markdown and the URLs of its plots."""
    reports_dir = Path(settings.server.reports_dir)
    found = latest_report(reports_dir)
    if found is None:
        raise NotFoundError(f"no evaluation report under {str(reports_dir)!r} "
                            "(run `podrec evaluate --out` there)")
    folder = found.parent
    rel = folder.relative_to(reports_dir).as_posix()
    prefix = "/reports/files/" + (f"{rel}/" if rel != "." else "")
    md = folder / "results.md"
    return {"name": rel if rel != "." else folder.name,
            "modified": datetime.fromtimestamp(found.stat().st_mtime, UTC).isoformat(),
            "results": json.loads(found.read_text(encoding="utf-8")),
            "markdown": md.read_text(encoding="utf-8") if md.is_file() else None,
            "images": [{"name": p.name, "url": prefix + p.name}
                       for p in sorted(folder.glob("*.png"))]}


@routes.get("/reports/files/{path:path}", dependencies=[CLIENT], response_class=FileResponse,
            responses={200: {"description": "the file", "content": {
                media: {"schema": {} if media == "application/json"
                        else {"type": "string", "format": "binary"}}
                for media in sorted(set(REPORT_FILES.values()))}},
                       404: {"description": "no report file at this path"}})
def report_file(settings: Settings, path: str) -> Any:
    """A file of an evaluation report (PNG plots, results.json, results.md)."""
    root = Path(settings.server.reports_dir).resolve()
    target = (root / path).resolve()
    if (not target.is_relative_to(root) or not target.is_file()
            or target.suffix.lower() not in REPORT_FILES):
        raise NotFoundError(f"no report file {path!r}")
    return FileResponse(target, media_type=REPORT_FILES[target.suffix.lower()])
