"""Pydantic request and response shapes of the HTTP API (they are the public contract)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

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


class SearchIn(BaseModel):
    text: str | None = Field(None, max_length=1000, description='Text; weighted terms allowed: "red circle" - "white background".')
    image_media_id: int | None = Field(None, ge=1, le=MAX_ID, description="Search with an indexed media item's embedding.")
    vector: list[FiniteFloat] | None = Field(None, min_length=1, max_length=8192, description="A raw query vector in the library's space.")
    terms: list[TermIn] = Field(default_factory=list, max_length=32, description="Extra weighted terms.")
    weights: dict[Literal["text", "image", "vector"], Weight] = Field(default_factory=dict, description="Weights of text, image_media_id and vector.")
    kind: Literal["image", "video", "any"] = "any"
    k: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=100_000)
    path_prefix: str | None = None
    generated: bool | None = None
    min_score: float | None = Field(None, ge=-1, le=1, allow_inf_nan=False)


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


class SearchOut(BaseModel):
    results: list[HitOut]
    miss: bool
    took_ms: float


class JobIn(BaseModel):
    roots: list[str] = Field(..., min_length=1, max_length=64)


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
