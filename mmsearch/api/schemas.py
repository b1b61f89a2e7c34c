"""Pydantic request and response shapes of the HTTP API (they are the public contract)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..capture_time import wall_clock
from ..search.query import MAX_NEAR_KM, RERANK_TOP_DEFAULT, RERANK_TOP_MAX

# SQL integer ids (32-bit on PostgreSQL); larger numbers are refused (422, or 404 for an id in
# the path) without asking the database, which would fail on them.
MAX_ID = 2**31 - 1
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
Weight = Annotated[float, Field(allow_inf_nan=False, ge=-100, le=100)]


class Body(BaseModel):
    """A request body of mmsearch's own endpoints: an unknown field is refused (422 naming it),
    so a misspelt filter is not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class TermIn(Body):
    text: str | None = Field(None, min_length=1, max_length=1000)
    media_id: int | None = Field(None, ge=1, le=MAX_ID)
    vector: list[FiniteFloat] | None = Field(None, min_length=1, max_length=8192)
    weight: Weight = 1.0

    @model_validator(mode="after")
    def _one_source(self) -> "TermIn":
        if sum(x is not None for x in (self.text, self.media_id, self.vector)) != 1:
            raise ValueError("a term needs exactly one of text, media_id, vector")
        return self


class GenerationIn(Body):
    n: int = Field(1, ge=1, le=8, description="Images to generate.")
    steps: int | None = Field(None, ge=1, le=1000, description="Sampling steps (default: the server's setting).")
    sampler: Literal["ddim", "ddpm"] | None = Field(
        None, description="Default: the generator's preferred sampler (ddim for mini, ddpm for karlo)."
    )
    guidance: float | None = Field(
        None,
        ge=0,
        le=50,
        allow_inf_nan=False,
        description="Classifier-free guidance scale (default: the generator's own; 1.5 for mini).",
    )
    seed: int | None = Field(None, ge=0, le=2**31 - 1)


class NearIn(Body):
    lat: float = Field(..., ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(..., ge=-180, le=180, allow_inf_nan=False)
    km: float = Field(..., gt=0, le=MAX_NEAR_KM, allow_inf_nan=False)


class CaptureFiltersIn(Body):
    """The capture filters of searches and of the timeline."""

    taken_after: str | None = Field(
        None,
        max_length=40,
        description="ISO date or datetime, inclusive: taken at or after it (by the clock where it was taken).",
    )
    taken_before: str | None = Field(
        None, max_length=40, description="ISO date (its whole day) or datetime, inclusive: taken at or before it."
    )
    camera: str | None = Field(None, min_length=1, max_length=200, description="Part of the camera make or model.")
    place: str | None = Field(
        None, min_length=1, max_length=200, description="Part of the place name (district, city, region, country)."
    )

    @field_validator("taken_after", "taken_before")
    @classmethod
    def _iso_time(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                wall_clock(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an ISO date or datetime (2019-06-01, 2019-06-01T14:30)") from None
        return value

    def capture_filters(self) -> dict:
        """These filters as SearchRequest fields: times as wall-clock seconds, a bare date
        before as the end of its day."""
        return {
            "taken_after": wall_clock(self.taken_after) if self.taken_after else None,
            "taken_before": wall_clock(self.taken_before, end_of_day=True) if self.taken_before else None,
            "camera": self.camera,
            "place": self.place,
        }


class SearchIn(CaptureFiltersIn):
    text: str | None = Field(
        None, max_length=1000, description='Text; weighted terms allowed: "red circle" - "white background".'
    )
    image_media_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="Search with an indexed media item's embedding."
    )
    vector: list[FiniteFloat] | None = Field(
        None, min_length=1, max_length=8192, description="A raw query vector in the library's space."
    )
    terms: list[TermIn] = Field(default_factory=list, max_length=32, description="Extra weighted terms.")
    weights: dict[Literal["text", "image", "vector"], Weight] = Field(
        default_factory=dict, description="Weights of text, image_media_id and vector."
    )
    kind: Literal["image", "video", "any"] = "any"
    k: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=100_000)
    path_prefix: str | None = None
    generated: bool | None = None
    min_score: float | None = Field(None, ge=-1, le=1, allow_inf_nan=False)
    generate: Literal["auto", "never", "always"] | None = Field(
        None,
        description="On a miss: auto searches with the prior, then generates; never; always generates. "
        "Default: the server's setting.",
    )
    generation: GenerationIn = Field(
        default_factory=GenerationIn, description="How to generate, when it comes to that."
    )
    rerank: Literal["itm"] | None = Field(
        None,
        description="itm: score the first rerank_top hits again with BLIP's image-text matching head and "
        "reorder them by it (libraries with a blip: model; a text query of text terms only).",
    )
    rerank_top: int = Field(
        RERANK_TOP_DEFAULT, ge=1, le=RERANK_TOP_MAX, description="How many of the first hits a rerank scores."
    )
    near: NearIn | None = Field(None, description="Within km of a point (great-circle distance).")
    sort: Literal["score", "date"] = Field("score", description="date: the same hits, newest first (undated last).")
    mode: Literal["vector", "keyword", "hybrid"] = Field(
        "hybrid",
        description="How text searches: its embedding, its words (file and folder names, captions, camera, "
        'place, prompts), or both fused. A lone quoted term ("IMG_2041") searches words only.',
    )

    @model_validator(mode="after")
    def _rerank_top_with_rerank(self) -> "SearchIn":
        if "rerank_top" in self.model_fields_set and self.rerank is None:
            raise ValueError("rerank_top applies with rerank")
        return self


class TimelineIn(CaptureFiltersIn):
    """GET /timeline's query: the capture filters, the kind, and a page."""

    kind: Literal["image", "video", "any"] = "any"
    limit: int = Field(60, ge=1, le=500)
    offset: int = Field(0, ge=0, le=10_000_000)
    generated: bool = Field(False, description="true: the generated images as well.")


class TimelineOut(BaseModel):
    results: list[HitOut] = Field(..., description="Newest first by capture time; undated last. Each score is 0.")
    total: int = Field(..., description="Media passing the filters (this page holds `limit` of them from `offset`).")


class PlaceOut(BaseModel):
    place: str
    count: int


class InterpolateIn(Body):
    media_id: int = Field(..., ge=1, le=MAX_ID)
    alpha: float = Field(0.5, ge=0, le=1, allow_inf_nan=False)


class GenerateIn(GenerationIn):
    prompt: str | None = Field(None, min_length=1, max_length=1000, description="Text to draw.")
    from_media_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="Decode from this indexed image's embedding (variations)."
    )
    edit: list[Annotated[str, Field(min_length=1, max_length=1000)]] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description='With from_media_id: ["source text", "target text"], a text-diff edit.',
    )
    interpolate: InterpolateIn | None = Field(
        None, description="With from_media_id: slerp towards another image's embedding."
    )

    @model_validator(mode="after")
    def _one_source(self) -> "GenerateIn":
        if (self.prompt is None) == (self.from_media_id is None):
            raise ValueError("give exactly one of prompt and from_media_id")
        if self.from_media_id is None and (self.edit or self.interpolate):
            raise ValueError("edit and interpolate work on from_media_id")
        return self


class HitOut(BaseModel):
    id: int
    path: str
    kind: str
    score: float
    t_start: float | None
    t_end: float | None
    generated: bool
    via: str
    file_url: str
    thumbnail_url: str
    rerank_score: float | None = Field(
        None,
        exclude_if=lambda v: v is None,  # only in the hits a rerank scored
        description="P(match) from the rerank's image-text matching head; score stays the embeddings' cosine.",
    )
    taken_at: str | None = Field(
        None, description="When it was taken (ISO 8601, the clock where it was taken; with its UTC offset if known)."
    )
    camera: str | None = None
    gps: list[float] | None = Field(None, description="[lat, lon] in degrees.")
    place: str | None = None
    found_by: Literal["vector", "keyword", "both"] = Field(
        "vector", description="What found the hit: the query's embedding, its words, or both."
    )


class SearchOut(BaseModel):
    results: list[HitOut]
    miss: bool = Field(
        ..., description="The text search alone found no close match (the first stage says by which rule)."
    )
    via: str = Field(
        "text",
        description="What answered: text, image, video (a clip), prior (the prior's predicted embedding) or generated.",
    )
    stages: list[dict] = Field(
        default_factory=list,
        description="Each stage of generate-on-miss: the rule that judged it (configured, calibrated, ...), "
        "its best score, and for the calibrated rule its signal and threshold in that rule's units; and a rerank "
        "(method, model, top) when one reordered the results.",
    )
    took_ms: float


class DuplicateOut(HitOut):
    hash_distance: int = Field(..., description="Bits of its perceptual hash that differ from the keeper's (of 64).")
    width: int | None
    height: int | None
    size: int = Field(..., description="Bytes.")


class DuplicateGroupOut(BaseModel):
    keeper: int = Field(..., description="The media id suggested to keep: the largest, then the oldest.")
    members: list[DuplicateOut] = Field(
        ..., description="The keeper first, then the rest by similarity; each `score` is its similarity to the keeper."
    )


class DuplicatesOut(BaseModel):
    groups: list[DuplicateGroupOut]
    total: int = Field(..., description="Groups in the library (this page holds `limit` of them from `offset`).")
    images: int = Field(..., description="Images compared.")
    min_similarity: float
    max_distance: int
    took_ms: float = Field(..., description="How long finding the groups took (when they were found: they are kept).")


class GenerateOut(BaseModel):
    results: list[HitOut]
    took_ms: float


class JobIn(Body):
    kind: Literal["index", "import"] = Field(
        "index", description="index: walk folders and embed their files; import: read embeddings made elsewhere."
    )
    roots: list[str] = Field(..., min_length=1, max_length=64, description="Folders to index; the one to import.")
    format: Literal["clip-retrieval"] | None = Field(
        None, description="What an import reads: clip-retrieval's img_emb/ and metadata/ (the default)."
    )
    model: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="An import's model (the one that made its vectors); none: vectors of an unknown model.",
    )
    runner: Literal["local", "ray"] | None = Field(
        None,
        description="Where an index job decodes and embeds: local (the server's processes) or ray (Ray Data on the "
        "server's Ray cluster, MMSEARCH_RAY_ADDRESS); none: the server's MMSEARCH_RUNNER.",
    )

    @model_validator(mode="after")
    def _fits_kind(self) -> "JobIn":
        if self.kind == "index" and (self.format is not None or self.model is not None):
            raise ValueError("format and model apply to import jobs only")
        if self.kind == "import" and self.runner is not None:
            raise ValueError("runner applies to index jobs only")
        if self.kind == "import" and len(self.roots) != 1:
            raise ValueError("an import job reads one folder: give exactly one root")
        return self


class ModelIn(Body):
    spec: str = Field(
        ...,
        min_length=1,
        max_length=1024,
        description="An encoder spec, as --model takes: an open_clip NAME/TAG, hf-hub:ORG/REPO, a local folder...",
    )


class MediaOut(BaseModel):
    id: int
    path: str
    kind: str
    size: int
    width: int | None
    height: int | None
    duration: float | None
    content_hash: str | None
    generated: bool
    generation: dict | None
    error: str | None
    indexed_at: float
    file_url: str
    thumbnail_url: str
