import pytest

from models_registry import artifacts


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Model files of each test go to its own folder; the per-process model cache starts empty."""
    settings.MEDIA_ROOT = tmp_path / "media"
    artifacts._MODEL_CACHE.clear()
    yield settings.MEDIA_ROOT
    artifacts._MODEL_CACHE.clear()
