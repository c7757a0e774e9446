from tests.storage.conftest import bystander, bystander_untouched  # noqa: F401  (the same safety net)
