"""Which images this node's engine holds, and which ones this agent has pulled.

Owns: the image bookkeeping the pod workers share: presence (looked up once, then
cached), pulls done by this agent (so imagePullPolicy Always pulls once per agent, not
once per restart) and forgetting an image the engine turned out not to have. Rules:
concurrent first lookups of one image share a single engine call; Docker errors reach
the caller unchanged.
"""

from __future__ import annotations

import trio

from .docker_api import DockerApi


class ImageCache:
    def __init__(self, docker: DockerApi) -> None:
        self._docker = docker
        self._present: set[str] = set()
        self._pulled: set[str] = set()
        self._lookups: dict[str, trio.Event] = {}

    async def present(self, image: str) -> bool:
        """Is `image` on the engine? Cached once seen; concurrent first lookups share one call."""
        if image in self._present:
            return True
        pending = self._lookups.get(image)
        if pending is not None:
            await pending.wait()
            return image in self._present
        done = self._lookups[image] = trio.Event()
        try:
            if await self._docker.image_present(image):
                self._present.add(image)
        finally:
            del self._lookups[image]
            done.set()
        return image in self._present

    def forget(self, image: str) -> None:
        """The engine said it has no such image (removed behind our back): look it up again next time."""
        self._present.discard(image)

    def was_pulled(self, image: str) -> bool:
        return image in self._pulled

    async def pull(self, image: str) -> None:
        """Pull `image` (ImagePullError, DockerUnavailable) and remember it as pulled and present."""
        await self._docker.pull(image)
        self.note_pulled(image)

    def note_pulled(self, image: str) -> None:
        """Count `image` as pulled by this agent (also when a failed pull fell back on a local copy)."""
        self._pulled.add(image)
        self._present.add(image)
