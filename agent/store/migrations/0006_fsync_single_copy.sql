-- A single-copy store (store.replicated false: chDB, or one server) syncs every insert to disk
-- before it returns, so that no bus offset is committed past rows still in the page cache (a
-- power cut would lose them, and the bus would not replay them). Tables created from now on
-- get the settings in their SETTINGS clause (migrate.FSYNC, in table_settings); these
-- statements set them on the tables made before. A replicated store skips them (render leaves
-- out what names the settings): its other copies cover a lost disk.
ALTER TABLE {db}.samples {on_cluster} MODIFY SETTING {fsync};
ALTER TABLE {db}.spans {on_cluster} MODIFY SETTING {fsync};
ALTER TABLE {db}.user_feedback {on_cluster} MODIFY SETTING {fsync};
ALTER TABLE {db}.scores {on_cluster} MODIFY SETTING {fsync};
ALTER TABLE {db}.embeddings {on_cluster} MODIFY SETTING {fsync};
ALTER TABLE {db}.flags {on_cluster} MODIFY SETTING {fsync};
ALTER TABLE {db}.detector_runs {on_cluster} MODIFY SETTING {fsync};
ALTER TABLE {db}.reviews {on_cluster} MODIFY SETTING {fsync};
