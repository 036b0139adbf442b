"""The Qt-free engine: everything that talks to PostgreSQL, Redis, pg_dump and the keyring."""
