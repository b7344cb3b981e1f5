"""The database layer: typed models, engines for MySQL and SQLite, and schema upgrades.

- ``models``: the tables (``TradeRun``, ``TradeOrder``, ``TradeFill``, ``TradeEvent``,
  ``SchemaMigration``) and the status vocabularies stored in them.
- ``engine``: ``make_engine``, ``make_session_factory``, ``default_database_url``.
- ``migrations``: ``upgrade(url)``, the SQL files under ``deploy/mysql`` for MySQL and the models
  for SQLite.
- ``cli``: ``execgw db upgrade``.
"""
