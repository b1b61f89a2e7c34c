"""The Ray runner: an index job's decode and embed as Ray Data stages.

The file list is read into a dataset -> `map_batches` decodes on CPU tasks -> `map_batches` on
an actor pool embeds, each actor holding an encoder it loads itself (a GPU each when the
cluster has them) -> the results stream back, in input order, to the job's process, which
writes them to SQL in batches exactly as the local runner's results. So a job killed or
failed mid-way resumes like a local one, and nothing is indexed twice.

Rows travel as pickled Decoded / DecodedVideo objects (with their vectors): images of any
size and videos with any number of frames, without a tensor schema. A video comes back with
its keyframes only. Workers read the files by the paths the scan found: on a cluster, the
library's folders must be mounted at the same paths on every node, and mmsearch installed.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator
from functools import partial

import numpy as np

from ..encoders.video import SamplingConfig
from .decode import Decoded, decode_image
from .decode_video import DecodedVideo, decode_video
from .pipeline import PipelineConfig, embedded_group, usable_cores
from .runners import RunnerUnavailableError
from .video_vectors import frame_vectors, keyframe_indices

RAY_MISSING = "the ray runner needs Ray: pip install 'mmsearch[ray]'"
CPUS_PER_ENCODER = 4  # without GPUs, one encoder actor per this many of the cluster's CPUs
# The widest decoded images and frames a decode task's memory is reserved for (longer side /
# shorter side; the shorter is scaled down to max_side or frame_side).
PANORAMA = 4
WIDESCREEN = 16 / 9


def require_ray() -> None:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as e:
        raise RunnerUnavailableError(RAY_MISSING) from e


def connect(address: str | None) -> None:
    """Join the Ray cluster at `address` (or RAY_ADDRESS), else start a local Ray with this
    machine's CPUs; once per process, kept for the next jobs."""
    require_ray()
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, include_dashboard=False)
    else:
        ray.init(num_cpus=usable_cores(), include_dashboard=False)


def _decoded(batch: dict[str, np.ndarray], decode: Callable[[str], object]) -> dict[str, np.ndarray]:
    """Each row's group of paths, decoded."""
    return _rows([[decode(p) for p in pickle.loads(group)] for group in batch["row"]])


def _rows(objects: list) -> dict[str, np.ndarray]:
    column = np.empty(len(objects), dtype=object)
    column[:] = [pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL) for o in objects]
    return {"row": column}


class _Embed:
    """An actor's encoder. Per group of images: (decoded images without their pixels, their
    vectors, failed files); per video: (the video with its keyframes only, its frames' vectors)."""

    def __init__(self, load_encoder: Callable[[], object]):
        self.encoder = load_encoder()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return _rows([self._group(pickle.loads(row)) for row in batch["row"]])

    def _group(self, group: list) -> tuple:
        if group and isinstance(group[0], DecodedVideo):
            (video,) = group
            return self._video(video)
        good, vectors, bad = embedded_group(group, self.encoder.embed_images)
        for d in good:
            d.pixels = None  # the job's process needs the record, not the pixels
        return good, vectors, bad

    def _video(self, video: DecodedVideo) -> tuple[DecodedVideo, np.ndarray | None]:
        if video.error:
            return video, None
        frames = frame_vectors(video, self.encoder)
        video.keep_only(keyframe_indices(video.times, video.segments))
        return video, frames


class RayEmbedder:
    """The runner's MediaEmbedder (runners.py) on Ray Data."""

    def __init__(
        self,
        load_encoder: Callable[[], object],
        cfg: PipelineConfig,
        sampling: SamplingConfig,
        address: str | None = None,
    ):
        require_ray()
        self.load_encoder, self.cfg, self.sampling, self.address = load_encoder, cfg, sampling, address

    def image_batches(self, paths: list[str]) -> Iterator[tuple[list[Decoded], np.ndarray, list[Decoded]]]:
        # Groups of batch_size consecutive files, as the local runner embeds them (pipeline.embedded_batches).
        size, side = self.cfg.batch_size, self.cfg.max_side
        decode = partial(_decoded, decode=partial(decode_image, max_side=side, max_pixels=self.cfg.max_pixels))
        memory = 2 * size * 3 * side * (PANORAMA * side)  # decoded, then pickled
        return self._results([paths[i : i + size] for i in range(0, len(paths), size)], decode, memory)

    def videos(self, paths: list[str]) -> Iterator[tuple[DecodedVideo, np.ndarray | None]]:
        frames, side = max(self.sampling.max_frames, self.sampling.num_frames), self.sampling.frame_side
        memory = 2 * frames * 3 * side * (WIDESCREEN * side)
        decode = partial(_decoded, decode=partial(decode_video, sampling=self.sampling))
        return self._results([[p] for p in paths], decode, int(memory))

    def _results(self, groups: list[list[str]], decode: Callable, memory: int) -> Iterator[tuple]:
        """What _Embed makes of each group of paths, in order: decoded on CPU tasks, embedded on
        the actor pool, one group per call."""
        if not groups:
            return
        connect(self.address)
        import ray
        import ray.data

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False  # the job reports its own progress
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        # Never more than a CPU's share of the cluster's memory: a task asking more than any node
        # has would wait for ever.
        memory = min(memory, int(resources.get("memory", memory * cpus) / cpus))
        if gpus:
            encoders = {"num_gpus": 1, "compute": ray.data.ActorPoolStrategy(size=gpus)}
        else:
            encoders = {"num_cpus": 1, "compute": ray.data.ActorPoolStrategy(size=max(1, cpus // CPUS_PER_ENCODER))}
        dataset = (
            ray.data.from_items([{"row": pickle.dumps(g)} for g in groups])
            # A decode task reserves the memory its group takes, so a node runs no more of them
            # than it holds. That also keeps decoding a stage of its own, tasks on any free CPU:
            # Ray fuses consecutive stages whose resource requests are equal.
            .map_batches(decode, batch_size=1, num_cpus=1, memory=memory)
            .map_batches(_Embed, batch_size=1, fn_constructor_kwargs={"load_encoder": self.load_encoder}, **encoders)
        )
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for row in batch["row"]:
                yield pickle.loads(row)
