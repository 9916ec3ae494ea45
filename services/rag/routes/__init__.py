"""The RAG service's routes, one module per concept; ``create_app`` only assembles them."""
