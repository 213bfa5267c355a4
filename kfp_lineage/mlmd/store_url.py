"""A parsed metadata store URL and the ml-metadata connection it names; parsing lives in store.py."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ml_metadata.proto import metadata_store_pb2


@dataclasses.dataclass(frozen=True)
class StoreURL:
    """A parsed store URL. `str()` never shows the password; `redacted` is what logs and errors print."""

    scheme: str
    path: str = ""
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = dataclasses.field(default="", repr=False)
    database: str = ""

    @property
    def redacted(self) -> str:
        """The URL with any password replaced by `***`."""
        if self.scheme == "sqlite":
            return f"sqlite:///{self.path}"  # absolute paths give sqlite:////abs/path, which parses back the same
        auth = self.user + (":***" if self.password else "")
        return f"{self.scheme}://{auth}@{self.host}:{self.port}/{self.database}"

    def __str__(self) -> str:
        return self.redacted

    def connection_config(self) -> metadata_store_pb2.ConnectionConfig:
        """The ml-metadata ConnectionConfig for this URL."""
        from ml_metadata.proto import metadata_store_pb2

        config = metadata_store_pb2.ConnectionConfig()
        if self.scheme == "sqlite":
            config.sqlite.filename_uri = self.path
            config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        elif self.scheme == "mysql":
            config.mysql.host = self.host
            config.mysql.port = self.port
            config.mysql.user = self.user
            config.mysql.password = self.password
            config.mysql.database = self.database
        else:
            config.postgresql.host = self.host
            config.postgresql.port = str(self.port)
            config.postgresql.user = self.user
            config.postgresql.password = self.password
            config.postgresql.dbname = self.database
        return config
