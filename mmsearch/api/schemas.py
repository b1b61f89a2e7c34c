"""Pydantic request and response shapes of the HTTP API (they are the public contract)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from ..search.query import RERANK_TOP_DEFAULT, RERANK_TOP_MAX

MAX_ID = 2**63 - 1  # SQL integer ids; larger numbers are refused with 422, not a 500
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
Weight = Annotated[float, Field(allow_inf_nan=False, ge=-100, le=100)]


class TermIn(BaseModel):
    text: str | None = Field(None, min_length=1, max_length=1000)
    media_id: int | None = Field(None, ge=1, le=MAX_ID)
    vector: list[FiniteFloat] | None = Field(None, min_length=1, max_length=8192)
    weight: Weight = 1.0

    @model_validator(mode="after")
    def _one_source(self) -> "TermIn":
        if sum(x is not None for x in (self.text, self.media_id, self.vector)) != 1:
            raise ValueError("a term needs exactly one of text, media_id, vector")
        return self


class GenerationIn(BaseModel):
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


class SearchIn(BaseModel):
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

    @model_validator(mode="after")
    def _rerank_top_with_rerank(self) -> "SearchIn":
        if "rerank_top" in self.model_fields_set and self.rerank is None:
            raise ValueError("rerank_top applies with rerank")
        return self


class InterpolateIn(BaseModel):
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


class SearchOut(BaseModel):
    results: list[HitOut]
    miss: bool = Field(
        ..., description="The text search alone found no close match (the first stage says by which rule)."
    )
    via: str = Field(
        "text", description="What answered: text, image, prior (the prior's predicted embedding) or generated."
    )
    stages: list[dict] = Field(
        default_factory=list,
        description="Each stage of generate-on-miss: the rule that judged it (configured, calibrated, ...), "
        "its best score, and for the calibrated rule its signal and threshold in that rule's units; and a rerank "
        "(method, model, top) when one reordered the results.",
    )
    took_ms: float


class GenerateOut(BaseModel):
    results: list[HitOut]
    took_ms: float


class JobIn(BaseModel):
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

    @model_validator(mode="after")
    def _fits_kind(self) -> "JobIn":
        if self.kind == "index" and (self.format is not None or self.model is not None):
            raise ValueError("format and model apply to import jobs only")
        if self.kind == "import" and len(self.roots) != 1:
            raise ValueError("an import job reads one folder: give exactly one root")
        return self


class ModelIn(BaseModel):
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
