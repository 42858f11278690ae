"""secrets-sync: keep AWS Secrets Manager in step with GitHub Secrets."""

from .errors import SecretsSyncError

__version__ = "1.0.0"
__all__ = ["SecretsSyncError", "__version__"]
