from components.transform import cache as transform_cache


def test_latest_cache_sits_beside_transforms_outputs():
    uri = "/ws/pipeline_root/Transform/updated_analyzer_cache/17/"
    assert transform_cache.latest_cache_dir(uri) == "/ws/pipeline_root/Transform/analyzer_cache_latest"


def test_replace_dir_swaps_whole_trees(tmp_path):
    first, second, latest = tmp_path / "first", tmp_path / "second", tmp_path / "latest"
    (first / "a").mkdir(parents=True)
    (first / "a" / "entry").write_text("one")
    (second / "b").mkdir(parents=True)
    (second / "b" / "entry").write_text("two")
    transform_cache.replace_dir(str(first), str(latest))
    assert (latest / "a" / "entry").read_text() == "one"
    transform_cache.replace_dir(str(second), str(latest))
    assert (latest / "b" / "entry").read_text() == "two"
    assert not (latest / "a").exists()  # Nothing of the old tree is left behind.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["first", "latest", "second"]
