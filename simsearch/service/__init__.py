"""simsearch as an HTTP service: FastAPI app over one index, with micro-batched scoring and atomic writes."""

from simsearch.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]


def __getattr__(name: str):
    # create_app pulls in FastAPI; import it only when asked so `simsearch.service.settings` stays light.
    if name == "create_app":
        from simsearch.service.app import create_app
        return create_app
    raise AttributeError(name)
