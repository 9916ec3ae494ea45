"""``python -m services.rag``: run the RAG service with settings from the environment."""

from services.core.server import serve
from services.rag.app import SERVICE, create_app
from services.rag.settings import RagSettings


def main() -> None:
    settings = RagSettings()
    serve(
        create_app(settings),
        service=SERVICE,
        host=settings.host,
        port=settings.rag_port,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
