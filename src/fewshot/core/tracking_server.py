"""Is a tracking server there? Probed before a stage does any work, so a dead one fails in seconds."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.parse
import urllib.request

from fewshot.core.errors import UserError

SERVER_TIMEOUT_S = 5


def raise_if_unreachable(uri: str) -> None:
    """Fail in seconds, before any work, when a tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    shown = _without_credentials(uri)
    try:
        with urllib.request.urlopen(f"{shown.rstrip('/')}/health", timeout=SERVER_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return  # it answered (perhaps asking for credentials): MLflow's own calls take over
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        if isinstance(reason, ssl.SSLError):
            return  # it answered; TLS settings (MLFLOW_TRACKING_INSECURE_TLS, CA bundles) are MLflow's
        raise UserError(f"MLflow tracking server {shown} (MLFLOW_TRACKING_URI) does not answer "
                        f"({reason}); start it, or unset MLFLOW_TRACKING_URI to log to the "
                        "project's mlflow.db") from None


def _without_credentials(uri: str) -> str:
    """The URI without `user:password@`, to probe and to print.

    >>> _without_credentials("https://me:secret@mlflow.example.org:5000/x")
    'https://mlflow.example.org:5000/x'
    """
    parts = urllib.parse.urlsplit(uri)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
