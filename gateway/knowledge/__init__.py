"""Knowledge bases as an async service over ``rag``, and the options a retrieval takes."""
