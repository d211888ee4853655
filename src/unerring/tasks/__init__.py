"""Built-in processes. Each uses only the public API (`unerring.process`)."""
