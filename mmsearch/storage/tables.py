"""The library database's tables (SQLAlchemy 2 declarative). Alembic's migrations in
migrations/ build exactly these (tests/storage/test_schema.py compares them)."""

from __future__ import annotations

import time

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SCHEMA_VERSION = 2  # schema_info's version: what releases before migrations check (see storage/schema.py)


ACTIVE_JOB_STATES = ("pending", "running")

# Sizes and counts past 2**31: BIGINT on PostgreSQL (revision 0006); SQLite's INTEGER is 64-bit.
Int64 = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class SchemaInfo(Base):
    __tablename__ = "schema_info"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Media(Base):
    __tablename__ = "media"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(String(4096), unique=True)
    root: Mapped[str | None] = mapped_column(String(4096), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # image | video | unknown
    size: Mapped[int] = mapped_column(Int64, default=0)
    mtime: Mapped[float] = mapped_column(Float, default=0.0)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)
    caption: Mapped[str | None] = mapped_column(Text)
    generated: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    generation: Mapped[dict | None] = mapped_column(JSON)  # prompt, seed, backend, steps, guidance
    error: Mapped[str | None] = mapped_column(Text)
    indexed_at: Mapped[float] = mapped_column(Float, default=time.time)
    # Capture metadata (indexer/capture.py; revision 0004). taken_at is the wall-clock time where
    # it was taken, read as if UTC; taken_offset the minutes east of UTC when the file says.
    taken_at: Mapped[float | None] = mapped_column(Float, index=True)
    taken_offset: Mapped[int | None] = mapped_column(Integer)
    taken_source: Mapped[str | None] = mapped_column(String(8))  # exif | video | mtime
    camera_make: Mapped[str | None] = mapped_column(String(256))
    camera_model: Mapped[str | None] = mapped_column(String(256))
    lens: Mapped[str | None] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text)
    gps_lat: Mapped[float | None] = mapped_column(Float)
    gps_lon: Mapped[float | None] = mapped_column(Float)
    place: Mapped[str | None] = mapped_column(String(512))
    phash: Mapped[str | None] = mapped_column(String(16))  # images' perceptual hash, 16 hex digits (revision 0005)
    segments: Mapped[list["Segment"]] = relationship(
        back_populates="media", cascade="all, delete-orphan", passive_deletes=True
    )


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), index=True)
    t_start: Mapped[float] = mapped_column(Float)
    t_end: Mapped[float] = mapped_column(Float)
    keyframe: Mapped[str | None] = mapped_column(String(4096))
    media: Mapped[Media] = relationship(back_populates="segments")


class Vector(Base):
    __tablename__ = "vectors"
    __table_args__ = (Index("ix_vectors_space_kind_id", "space", "kind", "id"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), index=True)
    # indexed: the miss rule reads the frames of a segment (revision 0003)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # image | frame | segment | video
    space: Mapped[str] = mapped_column(String(256))
    t: Mapped[float | None] = mapped_column(Float)  # frame time for frame vectors
    dim: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # float16, little endian


class Space(Base):
    """An embedding space the library holds vectors in: the model that makes it, and whether
    searches use it (one active space). Pooled video vectors of a space are in spaces named
    "<space>|pool=..."."""

    __tablename__ = "spaces"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    spec: Mapped[str | None] = mapped_column(String(1024))  # None: written before specs were recorded
    space: Mapped[str] = mapped_column(String(256), unique=True)
    dim: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(16), default="index", server_default="index")  # index | add-model
    roots: Mapped[list] = mapped_column(JSON)
    space: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|running|done|failed|interrupted
    pid: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Int64, default=0)  # files to (re)index in this job
    done: Mapped[int] = mapped_column(Int64, default=0)
    new: Mapped[int] = mapped_column(Int64, default=0)
    changed: Mapped[int] = mapped_column(Int64, default=0)
    deleted: Mapped[int] = mapped_column(Int64, default=0)
    unchanged: Mapped[int] = mapped_column(Int64, default=0)
    errors: Mapped[int] = mapped_column(Int64, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float | None] = mapped_column(Float)


class JobError(Base):
    __tablename__ = "job_errors"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(4096))
    error: Mapped[str] = mapped_column(Text)
