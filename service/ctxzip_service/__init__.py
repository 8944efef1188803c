"""ctxzip REST sidecar: a compression API and an OpenAI-compatible pass-through (FastAPI).

    from ctxzip_service import ServiceSettings, create_app
    app = create_app(ServiceSettings(upstream="http://127.0.0.1:9000/v1"))

or from the shell: `ctxzip serve --upstream http://127.0.0.1:9000/v1`.
"""

from ctxzip_service.app import create_app
from ctxzip_service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
