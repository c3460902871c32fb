from django.apps import AppConfig


class ModelsRegistryConfig(AppConfig):
    name = "models_registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        # Registers the built-in promotion gates in every process, before any app adds its own.
        from models_registry import gates  # noqa: F401
