"""Connection poolers in front of the server: config parsers, admin-console readers, sizing."""
