"""The RAG service: collections of chunked documents in Qdrant, queried by embedding."""
