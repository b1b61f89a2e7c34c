"""Settings: one object, read from MMSEARCH_* environment variables; CLI flags override."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .imageio import DEFAULT_MAX_PIXELS

# The model a new library gets when none is named: see README "Models" for why this one.
DEFAULT_MODEL = "ViT-B-32/laion2b_s34b_b79k"

# The built-in models' folders (`mini`, ...), shipped inside the package.
WEIGHTS_ROOT = Path(__file__).resolve().parent / "weights"


def builtin_weights(name: str = "mini") -> Path:
    """The folder of a built-in model's weights (config JSONs, safetensors, thresholds)."""
    return WEIGHTS_ROOT / name


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_bytes(text: str) -> int:
    """'2GiB', '1.5 GB', '512M', '1000000' -> bytes (K/M/G/T alone are binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match and match.group(2).lower()
    if not match or unit not in _UNITS:
        raise ValueError(f"not a size: {text!r} (e.g. 2GiB, 500MB, 1073741824)")
    return int(float(match.group(1)) * _UNITS[unit])


class Settings(BaseSettings):
    """Everything a Library, the CLI and the API need to know.

    Each field can be set as MMSEARCH_<FIELD> (e.g. MMSEARCH_MODEL=ViT-B-32/laion2b_s34b_b79k).
    """

    model_config = SettingsConfigDict(env_prefix="MMSEARCH_", extra="ignore")

    library_dir: Path = Field(
        Path("mmsearch-library"), description="Where the database, indexes and generated media live."
    )
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite in library_dir.")
    model: str | None = Field(
        None,
        description="Encoder spec: mini, an open_clip NAME/TAG, hf-hub:ORG/REPO, a local checkpoint, blip:DIR or "
        f"hf-clip:DIR; default: the library's own model, and {DEFAULT_MODEL} for a new library.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto uses CUDA when present.")
    batch_size: int = Field(64, ge=1, le=4096, description="Images per encoder batch.")
    decode_workers: int | None = Field(
        None,
        ge=0,
        le=64,
        description="Processes decoding media during index jobs (0: none); "
        "default: 0 with 2 CPU cores or fewer, else 2.",
    )
    miss_threshold: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="Best text-to-image score below which a query counts as a miss; "
        "default: calibrated per embedding space.",
    )
    prior_miss_threshold: float | None = Field(
        None, ge=-1, le=1, description="The same for the prior's predicted image embedding; default: calibrated."
    )
    duplicate_similarity: float = Field(
        0.95,
        ge=-1,
        le=1,
        description="Embedding similarity from which two images may be copies of one picture (duplicates).",
    )
    duplicate_hash_distance: int = Field(
        14, ge=0, le=64, description="Most bits in which two copies' perceptual hashes may differ (duplicates)."
    )
    generator: str = Field(
        "mini",
        description="Image generator for generate-on-miss: "
        "mini, mini:DIR, karlo:PATH_OR_ID, kandinsky22:PATH_OR_IDS, or none.",
    )
    generate_default: Literal["auto", "never", "always"] = Field(
        "never", description="generate-on-miss mode of requests that do not say."
    )
    generate_steps: int = Field(25, ge=1, le=1000, description="Default sampling steps of generated images.")
    generate_step_budget: int = Field(
        8000,
        ge=1,
        description="Most denoising steps one generation request may cost: images x steps per image, DDPM "
        "counted at its whole schedule (8 mini DDPM images = 8000); more is refused with 422 before queueing.",
    )
    max_pixels: int = Field(
        DEFAULT_MAX_PIXELS, ge=1, description="Images with more pixels are refused as decompression bombs."
    )
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="Largest image upload the API accepts (413 above)."
    )
    max_query_video_bytes: int = Field(
        200 * 1024 * 1024, ge=1024, description="Largest video clip a search may upload (413 above)."
    )
    max_query_video_s: float = Field(
        300.0, gt=0, le=3600, description="Longest video clip a search is made with (400 above)."
    )
    hub_timeout_s: float = Field(5.0, gt=0, le=60, description="How long to wait for the model hub before failing.")
    video_sampling: Literal["shots", "fps", "uniform"] = Field(
        "shots", description="How frames are picked from videos at index time."
    )
    video_fps: float = Field(2.0, gt=0, le=60, description="Frames per second sampled (fps and shots sampling).")
    video_max_frames: int = Field(
        256, ge=1, le=10000, description="Most frames sampled from one video (the rate drops for long videos)."
    )
    video_frames: int = Field(12, ge=1, le=1000, description="Frames sampled per video with uniform sampling.")
    pooling: Literal["auto", "mean", "seqTransf"] = Field(
        "auto", description="Video vector pooling; auto: seqTransf when the model ships a trained head, else mean."
    )
    temporal_head: Path | None = Field(
        None, description="Folder of a trained seqTransf head (default: the one shipped with mini)."
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Keys accepted in the X-API-Key header (comma-separated in the environment); none: no auth.",
    )
    protect_reads: bool = Field(False, description="With api_keys: searches, media, files and /metrics need a key too.")
    protect_generation: bool = Field(True, description="With api_keys: requests that generate images need a key.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed to call the API from browsers (comma-separated); none: CORS off.",
    )
    allow_image_url: bool = Field(
        False, description="Let /knn-service fetch image_url queries (a server-side fetch: off by default)."
    )
    image_url_timeout_s: float = Field(5.0, gt=0, le=60, description="Time limit of one image_url fetch.")
    target_recall: float = Field(
        0.95,
        gt=0,
        le=1,
        description="Recall@10 against exact search that approximate indexes are tuned to reach, for library-like "
        "and text-like queries, at the lowest latency.",
    )
    index_memory: int | None = Field(
        None,
        ge=1,
        description="Memory budget of a library's vector indexes together, in bytes or with a unit (2GiB, 500MB); "
        "none: no limit. When float32 vectors do not fit, indexes hold compressed codes.",
    )
    runner: Literal["local", "ray"] = Field(
        "local",
        description="Where index jobs decode and embed: local (worker processes here) or ray (Ray Data stages "
        "on a Ray cluster; pip install 'mmsearch[ray]').",
    )
    ray_address: str | None = Field(
        None,
        description="The Ray cluster of the ray runner (ray://HOST:10001 or HOST:6379); none: a local Ray started "
        "with this machine's CPUs.",
    )
    vector_backend: Literal["faiss", "milvus"] = Field(
        "faiss",
        description="What holds and searches the vectors: faiss (index files in the library folder) or milvus "
        "(pip install 'mmsearch[milvus]'; see milvus_uri).",
    )
    milvus_uri: str | None = Field(
        None,
        description="The Milvus of the milvus backend: a local file path (Milvus Lite) or http://HOST:19530 "
        "(a Milvus server); default: milvus.db in library_dir.",
    )
    index_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders POST /jobs may index, each with what lies under it (comma-separated absolute "
        "paths in the environment); none: the API indexes nothing. The CLI is not restricted.",
    )

    @field_validator("index_memory", mode="before")
    @classmethod
    def _bytes(cls, v):
        return parse_bytes(v) if isinstance(v, str) else v

    @field_validator("api_keys", "cors_origins", "index_roots", mode="before")
    @classmethod
    def _split_commas(cls, v):
        if isinstance(v, str):
            return [part.strip() for part in v.split(",") if part.strip()]
        return v

    @field_validator("api_keys")
    @classmethod
    def _long_enough(cls, v: list[str]) -> list[str]:
        short = [k for k in v if len(k) < 16]
        if short:
            raise ValueError(
                "API keys must be at least 16 characters "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(24))'`)"
            )
        return v

    @field_validator("library_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("index_roots")
    @classmethod
    def _absolute(cls, v: list[Path]) -> list[Path]:
        try:
            folders = [p.expanduser() for p in v]
        except RuntimeError as e:  # ~user of no user
            raise ValueError(f"index_roots: {e}") from e
        relative = [str(p) for p in folders if not p.is_absolute()]
        if relative:
            raise ValueError(f"index_roots must be absolute paths: {', '.join(relative)}")
        return folders

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.library_dir / 'mmsearch.db').resolve()}"

    def with_overrides(self, **overrides) -> "Settings":
        """A copy with CLI flags applied; None means "flag not given"."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return self.model_validate({**self.model_dump(), **given}) if given else self
