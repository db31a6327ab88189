"""The services a command uses: settings, the catalog, the model table, the run store, memory and sandbox config, each loaded on first use."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from mamabear.config import settings as settings_mod
from mamabear.config.catalog import Catalog, search_roots
from mamabear.config.settings import Settings

if TYPE_CHECKING:
    from mamabear.config.models import ModelTable
    from mamabear.memory.config import MemoryConfig
    from mamabear.sandbox.config import SandboxConfig
    from mamabear.sandbox.sessions import Sessions
    from mamabear.store.database import Store


class Services:
    def __init__(self, settings: Settings | None = None, **flags: object) -> None:
        self.settings = (settings or settings_mod.load()).with_flags(**flags)

    def rerouted(self, **flags: str | None) -> Services:
        """The same workspace with other flags (model, base_url, sandbox, session); what is loaded already is shared."""
        other = Services(self.settings, **flags)
        for name in ("roots", "catalog", "models", "store", "sandbox", "memory_config"):  # none of them depends on those flags
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    @cached_property
    def roots(self) -> list:
        return search_roots(self.settings.project_dir)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.roots)

    @cached_property
    def models(self) -> ModelTable:
        from mamabear.config.models import ModelTable

        return ModelTable.load(self.roots)

    @cached_property
    def store(self) -> Store:
        from mamabear.store.database import Store

        return Store.open(self.settings.database_url)

    @cached_property
    def sandbox(self) -> SandboxConfig:
        from mamabear.sandbox.config import SandboxConfig

        return SandboxConfig.load(self.roots, self.settings.env)

    def sessions(self) -> Sessions:
        from mamabear.sandbox.sessions import Sessions

        return Sessions(self.settings, self.store, self.sandbox)

    def response_cache(self) -> Any:
        """The response cache runs read and fill, opened now; None with --no-cache or `cache: {enabled: false}`."""
        if self.settings.no_cache or not self.models.cache.enabled:
            return None
        from mamabear.llm.response_cache import open_cache

        return open_cache(self.settings.cache_url or self.models.cache.url, self.settings.home)

    def quota_book(self) -> Any:
        """The quota book every run shares: one file on this machine, or the worker pool's Redis broker when one is set
        (MAMABEAR_BROKER_URL), so quotas hold across workers; None when no provider has a quota."""
        if not self.models.quotas:
            return None
        from mamabear.llm.quota import QuotaBook, redis_url

        broker = self.settings.env.get("MAMABEAR_BROKER_URL") or ""
        return QuotaBook(broker if redis_url(broker) else self.settings.home / "quotas.db", self.models.quotas)

    @cached_property
    def memory_config(self) -> MemoryConfig:
        from mamabear.memory.config import MemoryConfig

        return MemoryConfig.load(self.roots)
