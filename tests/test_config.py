import pytest

from podrec.config import Config, ConfigError, load_config


def test_defaults_then_file_then_environment(tmp_path):
    assert load_config(env={}).database_url == Config().database_url
    toml = tmp_path / "podrec.toml"
    toml.write_text('database_url = "sqlite:///from-file.db"\n[embedder]\nname = "wordllama"\n'
                    'max_chars = 400\n[recommend]\nk = 20\n')
    cfg = load_config(toml, env={})
    assert (cfg.database_url, cfg.embedder.name, cfg.embedder.max_chars, cfg.recommend.k) == (
        "sqlite:///from-file.db", "wordllama", 400, 20)
    cfg = load_config(toml, env={"PODREC_DB": "postgresql+psycopg://h/db",
                                 "PODREC_EMBEDDER": "e5"})
    assert cfg.database_url == "postgresql+psycopg://h/db" and cfg.embedder.name == "e5"
    assert cfg.embedder.max_chars == 400
    cfg = load_config(env={"PODREC_CONFIG": str(toml)})
    assert cfg.recommend.k == 20


def test_mistakes_are_named(tmp_path):
    toml = tmp_path / "podrec.toml"
    toml.write_text("[recomend]\nk = 3\n")
    with pytest.raises(ConfigError, match="unknown key 'recomend'"):
        load_config(toml, env={})
    toml.write_text("[recommend]\nk = 'many'\n")
    with pytest.raises(ConfigError, match="podrec.toml: recommend.k: expected an integer"):
        load_config(toml, env={})
    toml.write_text("not toml = = =")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(toml, env={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml", env={})
    with pytest.raises(ConfigError, match="PODREC_EMBED_BATCH"):
        load_config(env={"PODREC_EMBED_BATCH": "lots"})
    toml.write_text("[server]\ncache_sync = 'push'\n")
    with pytest.raises(ConfigError, match="server.cache_sync: expected one of read, notify, "
                       "got 'push'"):
        load_config(toml, env={})


def test_the_documented_example_file_states_every_default():
    from pathlib import Path

    example = Path(__file__).parents[1] / "podrec.example.toml"
    assert load_config(example, env={}) == Config()


def test_configured_similarity_weights_are_the_models_defaults():
    from podrec.model.content import ContentWeights

    r, w = Config().recommend, ContentWeights()
    assert (r.weight_cosine, r.weight_lexical, r.weight_genre, r.weight_author,
            r.weight_popularity, r.expand_k, r.expand_weight) == (
        w.cosine, w.lexical, w.genre, w.author, w.popularity, w.expand_k, w.expand_weight)
