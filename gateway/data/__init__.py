"""Training data: question sets, RAFT rows, and text and chat rows from documents."""
