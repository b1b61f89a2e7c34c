"""Media rows, their files (only from inside the library's roots) and cached thumbnails."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, Response

from ...encoders.video import UnreadableVideoError
from ...imageio import UnreadableImageError
from ...library import Library
from ...search.query import MediaNotFoundError
from ..files import OutsideRootsError, content_type_of, safe_path
from ..schemas import MAX_ID, MediaOut
from ..state import AppState
from ..urls import file_url, thumbnail_url

NO_SNIFFING = {"X-Content-Type-Options": "nosniff"}  # browsers take the type given, never guess one


def find_media(library: Library, media_id: int):
    """The media row of `media_id`; MediaNotFoundError (404) for none, ids beyond SQL's integers included."""
    found = library.media(media_id) if 1 <= media_id <= MAX_ID else None
    if found is None:
        raise MediaNotFoundError(f"no media with id {media_id}")
    return found


def served_path(library: Library, media) -> Path:
    """The real path of a media item's file; 403 outside the library's roots, 404 when gone."""
    try:
        return safe_path(media.path, library.serving_roots(media))
    except OutsideRootsError:
        raise  # the error table's 403: it is an OSError too, which the next clause takes for a missing file
    except OSError as e:
        raise HTTPException(404, f"file of media {media.id} is gone: {media.path}") from e


def media_json(m) -> dict:
    return MediaOut(
        id=m.id,
        path=m.path,
        kind=m.kind,
        size=m.size,
        width=m.width,
        height=m.height,
        duration=m.duration,
        content_hash=m.content_hash,
        generated=m.generated,
        generation=m.generation,
        error=m.error,
        indexed_at=m.indexed_at,
        file_url=file_url(m.id),
        thumbnail_url=thumbnail_url(m.id),
    ).model_dump()


def media_router(state: AppState) -> APIRouter:
    router = APIRouter()
    library = state.library

    @router.get("/media/{media_id}", response_model=MediaOut, dependencies=state.read)
    def media(media_id: int) -> dict:
        return media_json(find_media(library, media_id))

    @router.get("/media/{media_id}/file", dependencies=state.read)
    def media_file(media_id: int):
        """The file as the type its bytes are, whatever its name says; a file that is not media
        (a page named .jpg) is an attachment of no type, which a browser saves and never renders."""
        path = served_path(library, find_media(library, media_id))
        try:
            content_type = content_type_of(path)
        except OSError as e:
            raise HTTPException(404, f"file of media {media_id} is gone: {path}") from e
        if content_type is None:
            return FileResponse(path, media_type="application/octet-stream", filename=path.name, headers=NO_SNIFFING)
        return FileResponse(path, media_type=content_type, headers=NO_SNIFFING)

    @router.get("/media/{media_id}/thumbnail", dependencies=state.read)
    def media_thumbnail(media_id: int, t: float | None = Query(None, ge=0, description="Seconds into a video.")):
        m = find_media(library, media_id)
        path = served_path(library, m)
        if m.error or m.kind not in ("image", "video"):
            raise HTTPException(404, f"media {media_id} has no thumbnail")
        if m.kind == "image" and t is not None:
            raise HTTPException(422, "t applies to videos only")
        if m.kind == "video":
            t = (m.duration or 0) / 2 if t is None else t
            if m.duration is not None and t > m.duration:
                raise HTTPException(422, f"t={t} is past the end of the video ({m.duration:.3f} s)")
        try:
            jpeg = state.thumbnails.jpeg(m, path, t)
        except (UnreadableImageError, UnreadableVideoError) as e:
            # A stored file that no longer decodes: this item has no thumbnail (404), not a bad request.
            raise HTTPException(404, f"media {media_id} no longer decodes: {e}") from e
        return Response(jpeg, media_type="image/jpeg")

    return router
