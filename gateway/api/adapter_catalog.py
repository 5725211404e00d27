"""The adapters a gateway serves: the adapters folder plus folders registered through the API.

:class:`AdapterCatalog` presents both to ``serve.engine.AdapterSync`` as one scan, so a single
sync loads, reloads and unloads them all. Registered folders stay where they are; the catalog
keeps their paths in memory (until restart). A registered adapter wins over a folder adapter of
the same name, which is then ignored. Only registered adapters can be removed
through the API: a folder adapter is removed by removing its folder. This module knows nothing
about HTTP beyond raising :class:`~gateway.errors.LoragError`.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from gateway.api.adapter_protocol import AdapterInfo, AdapterList, RefusedAdapter
from gateway.errors import LoragError, engine_unavailable, invalid
from serve.adapters import AdapterRefused, AdapterRegistry, AdapterSpec, Scan
from serve.engine import AdapterSync, Engine

log = logging.getLogger(__name__)
SUMMARY = ("method", "peft_method", "base_model", "dataset", "lora", "metrics", "behaviour", "warnings", "auto",
           "created", "lorag_version")  # fmt: skip
"""The lorag.json keys an adapter listing shows."""


class AdapterCatalog:
    """The registry's folder plus registered folders, kept loaded in ``engine`` by one AdapterSync."""

    def __init__(self, engine: Engine, registry: AdapterRegistry):
        self.engine = engine
        self.registry = registry
        self.registered: dict[str, Path] = {}
        self.sync = AdapterSync(engine, self)
        self.last = Scan({}, {})
        self._lock = asyncio.Lock()

    def scan(self) -> Scan:
        """What AdapterSync serves: the folder's adapters, then the registered ones (which win on a name)."""
        scan = self.registry.scan()
        for name, path in self.registered.items():
            try:
                scan.adapters[name] = self.registry.check(path)
                scan.refused.pop(name, None)
            except AdapterRefused as e:
                scan.adapters.pop(name, None)
                scan.refused[name] = f"registered from {path}: {e}"
        return scan

    async def refresh(self) -> Scan:
        async with self._lock:
            return await self._refresh()

    async def _refresh(self) -> Scan:
        self.last = await self.sync.refresh()
        return self.last

    async def poll(self, every_s: float) -> None:
        """Refresh every ``every_s`` seconds, forever; a failed refresh is logged and retried."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.refresh()
            except Exception:
                log.exception("refreshing adapters failed")

    async def register(self, name: str, path: str) -> AdapterInfo:
        """Validate the folder at ``path`` and hot-load it as ``name``."""
        folder = Path(path).expanduser().resolve()
        if folder.name != name:
            raise invalid("name", f"the adapter folder {folder} is named '{folder.name}', not '{name}'")
        try:
            self.registry.check(folder)
        except AdapterRefused as e:
            raise LoragError(400, f"adapter '{name}' refused: {e}", param="path", code="adapter_refused") from None
        async with self._lock:
            if name in self.engine.adapters() or name in self.registered or name == self.engine.info.base_model:
                raise LoragError(409, f"a model named '{name}' is already served", param="name", code="adapter_exists")
            self.registered[name] = folder
            scan = await self._refresh()
            if name not in scan.adapters:
                del self.registered[name]
                raise engine_unavailable(scan.refused.get(name, f"adapter '{name}' was not loaded"))
        log.info("adapter %s registered from %s", name, folder)
        return self.info(scan.adapters[name])

    async def unregister(self, name: str) -> None:
        async with self._lock:
            if name not in self.registered:
                if name in self.last.adapters:
                    raise LoragError(
                        409,
                        f"adapter '{name}' comes from the adapters folder {self.registry.folder}: "
                        "remove its folder there to stop serving it",
                        code="adapter_in_folder",
                    )
                raise LoragError(404, f"no registered adapter named '{name}'", code="adapter_not_found")
            del self.registered[name]
            await self._refresh()
        log.info("adapter %s unregistered", name)

    def listing(self) -> AdapterList:
        loaded = set(self.engine.adapters())
        return AdapterList(
            data=[self.info(spec) for name, spec in sorted(self.last.adapters.items()) if name in loaded],
            refused=[RefusedAdapter(name=n, reason=r) for n, r in sorted(self.last.refused.items())],
        )

    def info(self, spec: AdapterSpec) -> AdapterInfo:
        manifest = {key: spec.manifest[key] for key in SUMMARY if key in spec.manifest}
        if isinstance(manifest.get("base_model"), dict):
            manifest["base_model"] = manifest["base_model"].get("id")
        return AdapterInfo(
            name=spec.name,
            source="registered" if spec.name in self.registered else "folder",
            path=str(spec.path),
            peft_type=spec.peft_type,
            rank=spec.rank,
            target_modules=list(spec.target_modules),
            manifest=manifest,
        )
