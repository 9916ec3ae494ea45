"""``python -m services.rag``: run the RAG service with settings from the environment."""

from services.core.server import serve_from_env
from services.rag.app import SERVICE, create_app
from services.rag.settings import RagSettings


def main() -> None:
    serve_from_env(SERVICE, RagSettings, create_app, lambda settings: settings.rag_port)


if __name__ == "__main__":
    main()
